"""Raw fMRI + video -> prepared HDF5 RFSimage data (``brain2pix prepare``).

Each run is processed on its own (bounded memory): signals are read, z-scored per run (training
runs), split into ROIs (the voxels with a finite RF centre of each part of the ROI: dorsal then
ventral in the raw layout, left then right hemisphere in vim-2), rendered as RFSimages (eq. 2),
aligned with the frames (frame t uses volumes t+shift ... t+shift+n_trs-1) and appended to the
split's HDF5 file together with the fisheye-warped frames. What differs between dataset layouts
(where masks, centres, signals and frames come from) is a :class:`PrepareSource`:
:class:`RawDataset` (``data.dataset=raw``) or :class:`Vim2PrepareSource` (``data.dataset=vim2``).
"""

import contextlib
import json
import os

import numpy as np

from .. import __version__
from ..config import Config, config_to_dict
from ..errors import DataError
from ..io import prepared as schema
from ..io.raw import discover_runs, file_checksum, find_first, load_rf_centres, load_roi_masks, load_run
from ..io.video import read_video
from ..utils import get_logger, progress
from .receptive_fields import RFMapper, format_retinotopy, hemisphere_report, retinotopy_report
from .retina import cached_warp
from .signals import plan_run, select_roi_voxels, zscore

__all__ = ["prepare_dataset", "PrepareSource", "RawDataset", "Vim2PrepareSource", "open_source",
           "SPLITS", "orient_centres", "log_retinotopy"]

SPLITS = ("train", "test")


def orient_centres(cols, rows, swap_axes=False, flip_y=False):
    """Apply ``data.rf_swap_axes`` / ``data.rf_flip_y`` to the centres read from the files.

    Returns
    -------
    xs, ys : dict of str -> ndarray
        Horizontal and vertical centres per mask key (NaN kept).
    """
    xs, ys = (rows, cols) if swap_axes else (cols, rows)
    if flip_y:
        ys = {k: -v for k, v in ys.items()}
    return dict(xs), dict(ys)


def log_retinotopy(report, log=None):
    """Log a retinotopy report: the per-ROI lines as info, a misalignment as a warning."""
    log = log or get_logger()
    lines = format_retinotopy(report)
    for line in lines[:-1]:
        log.info("%s", line)
    (log.info if report["verdict"] == "aligned" else log.warning)("%s", lines[-1])


class PrepareSource:
    """What ``prepare`` reads from a dataset, whatever its layout (the shared half).

    A layout (:class:`RawDataset`, :class:`Vim2PrepareSource`) sets the ROI masks, the oriented RF
    centres and which mask keys make up each ROI, then calls :meth:`_build_rois`; it provides
    ``runs(split)``, ``sources(split)``, ``read_signals(run)`` (raw, one array per repetition),
    ``load_frames(run, split)`` and ``tr``. Everything else (ROI selection, z-scoring, the finite
    check of the voxels used, the RF mappers) is done here, once for every layout.

    Attributes
    ----------
    masks : dict of str -> ndarray of bool, shape (n_brain_voxels,)
    cols, rows : dict of str -> ndarray, shape (n_mask_voxels,)
        x (horizontal) and y (vertical) centre of every mask voxel (NaN = no estimate).
    parts : dict of str -> tuple of str
        Mask keys of each ROI, in the order its voxels are stacked.
    mappers : dict of str -> RFMapper
    centres : dict of str -> ndarray, shape (n_roi_voxels, 2)
    retinotopy : dict
        Orientation check of the centres (stored in the prepared files).
    """

    def _build_rois(self, config, parts, centre_sources, axis_sources):
        self.config = config
        self.parts = {roi: tuple(keys) for roi, keys in parts.items()}
        self.centre_paths = tuple(centre_sources)
        self.axis_sources = axis_sources
        self.n_brain_voxels = next(iter(self.masks.values())).shape[0]
        self.mappers, self.centres = {}, {}
        for roi in config.data.rois:
            if roi not in self.parts:
                raise DataError(f"data.rois: ROI {roi!r} is not in this dataset; expected some of "
                                f"{sorted(self.parts)}")
            x, y = self.finite_centres(roi)
            if x.size == 0:
                raise DataError(f"ROI {roi}: no voxel has a finite RF centre in {self.centre_paths}")
            self.mappers[roi] = RFMapper(x, y, config.data.image_size, config.data.rf_layout,
                                         source=self.axis_sources)
            self.centres[roi] = np.stack([x, y], axis=1)

    def finite_centres(self, roi, key=None):
        """x and y of the voxels of a ROI (or of one of its mask keys) with a finite centre."""
        keys = self.parts[roi] if key is None else (key,)
        xs, ys = [], []
        for k in keys:
            finite = np.isfinite(self.cols[k]) & np.isfinite(self.rows[k])
            xs.append(self.cols[k][finite])
            ys.append(self.rows[k][finite])
        return np.concatenate(xs), np.concatenate(ys)

    def used_voxels(self):
        """Brain voxels that go into the RFSimages (in a selected ROI, with a finite centre)."""
        used = np.zeros(self.n_brain_voxels, bool)
        for roi in self.config.data.rois:
            for key in self.parts[roi]:
                idx = np.flatnonzero(self.masks[key])
                used[idx[np.isfinite(self.cols[key]) & np.isfinite(self.rows[key])]] = True
        return used

    def load_signals(self, run, split):
        """Voxel signals of one run (test clips: repetitions averaged), z-scored as configured.

        Returns
        -------
        ndarray, shape (n_volumes, n_brain_voxels), float32
        """
        used = self.used_voxels()
        reps = []
        for path, signals in self.read_signals(run):
            if signals.shape[1] != self.n_brain_voxels:
                raise DataError(f"run {path!s}: expected {self.n_brain_voxels} voxels (the ROI "
                                f"masks' size), got signals of shape {signals.shape}")
            # only the voxels that go into the RFSimages must be finite
            bad = ~np.isfinite(signals[:, used])
            if bad.any():
                volume, column = np.argwhere(bad)[0]
                raise DataError(
                    f"signals in {path!s}: expected finite values in the ROI voxels, found "
                    f"{int(bad.sum())} NaN/inf entries (first at volume {int(volume)}, brain voxel "
                    f"{int(np.flatnonzero(used)[column])})")
            if reps and signals.shape != reps[0][1].shape:
                raise DataError(f"repetitions of {run['name']!r}: {path!s} has shape "
                                f"{signals.shape}, expected {reps[0][1].shape} like {reps[0][0]}")
            reps.append((path, signals))
        if len(reps) > 1:
            signals = np.mean([s for _, s in reps], axis=0, dtype=np.float64)
        else:
            signals = reps[0][1]
        if split == "train" or self.config.data.zscore_test:
            return zscore(signals)
        return np.asarray(signals, np.float32)

    def roi_voxels(self, signals, source):
        """Split a run's signals into ROIs: dict roi -> (n_volumes, n_roi_voxels)."""
        return {roi: select_roi_voxels(signals, self.masks, roi, self.cols, self.rows, source,
                                       parts=self.parts[roi])[0]
                for roi in self.config.data.rois}


class RawDataset(PrepareSource):
    """Masks, RF centres and run listing of a raw dataset directory.

    Parameters
    ----------
    raw_dir : str
        See :mod:`brain2pix_gluon.io.raw` for the layout.
    config : Config
    """

    def __init__(self, raw_dir, config):
        self.raw_dir = os.fspath(raw_dir)
        if not os.path.isdir(self.raw_dir):
            raise DataError(f"raw dataset {self.raw_dir!s} is not a directory")
        self.tr = config.data.tr
        self.mask_path = find_first(self.raw_dir, ("roimask.mat", "roimask.npz", "masks"),
                                    "ROI masks")
        self.masks = load_roi_masks(self.mask_path)
        if os.path.exists(os.path.join(self.raw_dir, "rf_centres.csv")):
            centre_paths = (os.path.join(self.raw_dir, "rf_centres.csv"),)
            cols, rows = load_rf_centres(centre_paths[0], masks=self.masks,
                                         mask_source=self.mask_path)
        else:
            col = find_first(self.raw_dir, ("col_centers_112px.mat", "col_centers.npz"),
                             "column RF centres")
            row = find_first(self.raw_dir, ("row_centers_112px.mat", "row_centers.npz"),
                             "row RF centres")
            centre_paths = (col, row)
            cols, rows = load_rf_centres(col, row, masks=self.masks, mask_source=self.mask_path)
        cols, rows = orient_centres(cols, rows, config.data.rf_swap_axes, config.data.rf_flip_y)
        x_src, y_src = centre_paths[0], centre_paths[-1]
        axis_sources = (y_src, x_src) if config.data.rf_swap_axes else (x_src, y_src)
        self.cols, self.rows = cols, rows  # now x (horizontal) and y (vertical) of every voxel
        self._build_rois(config, {roi: (roi + "d", roi + "v") for roi in ("V1", "V2", "V3")},
                         centre_paths, axis_sources)
        parts = {roi: {p: self.finite_centres(roi, roi + p) for p in ("d", "v")}
                 for roi in ("V1", "V2", "V3")}
        self.retinotopy = retinotopy_report(parts, config.data.rf_swap_axes, config.data.rf_flip_y)

    def runs(self, split):
        """Runs of a split (see :func:`brain2pix_gluon.io.raw.discover_runs`)."""
        return discover_runs(self.raw_dir, split)

    def sources(self, split):
        """sha256 of every file that a split is made from."""
        paths = [self.mask_path, *self.centre_paths]
        for run in self.runs(split):
            paths.extend(run["signals"])
            paths.append(run["video"])
        out = {}
        for path in paths:
            if os.path.isdir(path):
                for name in sorted(os.listdir(path)):
                    full = os.path.join(path, name)
                    out[os.path.relpath(full, self.raw_dir)] = file_checksum(full)
            else:
                out[os.path.relpath(path, self.raw_dir)] = file_checksum(path)
        return out

    def read_signals(self, run):
        """Each repetition's signals of a run as ``(path, (n_volumes, n_brain_voxels))``."""
        for path in run["signals"]:
            yield path, load_run(path, finite=False)

    def load_frames(self, run, split):
        """The run's video at one frame per TR: (n_frames, S, S, 3) uint8."""
        data_cfg = self.config.data
        return read_video(run["video"], data_cfg.image_size, data_cfg.tr, data_cfg.video_backend,
                          data_cfg.video_aspect, data_cfg.reencode)


class Vim2PrepareSource(PrepareSource):
    """A vim-2 subject (Nishimoto et al. 2011) as ``prepare`` reads it.

    ROIs are split by hemisphere (``V1 = V1lh + V1rh``), centres come from ``estimate-rf``
    (``col_centers_112px.mat`` / ``row_centers_112px.mat`` in the folder), training runs are
    ``rt`` cut into blocks of ``vim2.run_volumes`` volumes, and the test set is the validation
    set (``rv``, averaged over repetitions) with ``sv``; one stimulus frame per TR (the frame at
    the TR's onset). Only the ROI voxels are read (the release's other voxels hold NaN).

    Parameters
    ----------
    folder : str
    config : Config
        ``data.tr`` must equal ``vim2.tr`` (the release's TR, 1 s).
    """

    def __init__(self, folder, config):
        from ..io.vim2 import VIM2_PARTS, Vim2Dataset, check_vim2_tr, load_vim2_centres

        self.folder = os.fspath(folder)
        if not os.path.isdir(self.folder):
            raise DataError(f"vim-2 folder {self.folder!s} is not a directory")
        check_vim2_tr(config)
        self.tr = config.vim2.tr
        self.dataset = Vim2Dataset(self.folder, config.vim2.subject, config.vim2.stimulus_hz,
                                   config.vim2.tr)
        # the "brain" is the union of the ROI voxels: only these columns are ever read
        union = np.zeros(self.dataset.n_voxels, bool)
        for mask in self.dataset.masks.values():
            union |= mask
        self.columns = np.flatnonzero(union)
        self.masks = {k: m[self.columns] for k, m in self.dataset.masks.items()}
        cols, rows = load_vim2_centres(self.folder, self.dataset.masks)
        cols, rows = orient_centres(cols, rows, config.data.rf_swap_axes, config.data.rf_flip_y)
        self.cols, self.rows = cols, rows
        centre_paths = tuple(os.path.join(self.folder, n) for n in
                             ("col_centers_112px.mat", "row_centers_112px.mat"))
        axis_sources = centre_paths[::-1] if config.data.rf_swap_axes else centre_paths
        self._build_rois(config, VIM2_PARTS, centre_paths, axis_sources)
        self.retinotopy = hemisphere_report(
            {roi: {side: self.finite_centres(roi, roi + side) for side in ("lh", "rh")}
             for roi in VIM2_PARTS})
        self._run_volumes = config.vim2.run_volumes
        self._checksums = None

    def runs(self, split):
        """Training: blocks of ``vim2.run_volumes`` of ``rt``; test: the whole validation set."""
        name = os.path.basename(self.dataset.responses_path)
        if split == "train":
            blocks = [(f"run_{i:03d}", start, stop) for i, (start, stop) in
                      enumerate(self.dataset.runs(self._run_volumes), start=1)]
        else:
            blocks = [("validation", 0, self.dataset.n_volumes["test"])]
        array = {"train": ("rt", "st"), "test": ("rv", "sv")}[split]
        return [{"name": run, "split": split, "start": start, "stop": stop,
                 "signals": [f"{name}:{array[0]}[{start}:{stop}]"],
                 "video": f"Stimuli.mat:{array[1]} (volumes {start}:{stop})"}
                for run, start, stop in blocks]

    def sources(self, split):
        """sha256 of the release's two files and the centre files (computed once)."""
        if self._checksums is None:
            paths = (self.dataset.stimuli_path, self.dataset.responses_path, *self.centre_paths)
            self._checksums = {os.path.basename(p): file_checksum(p) for p in paths}
        return dict(self._checksums)

    def read_signals(self, run):
        yield run["signals"][0], self.dataset.responses(run["split"], run["start"], run["stop"],
                                                        self.columns)

    def load_frames(self, run, split):
        return self.dataset.frames(split, run["start"], run["stop"], self.config.data.image_size)


def open_source(raw_dir, config):
    """The dataset ``prepare`` reads, by ``data.dataset``: :class:`RawDataset` or
    :class:`Vim2PrepareSource`."""
    from ..errors import check_choice

    check_choice(config.data.dataset, "data.dataset", ("raw", "vim2"))
    if config.data.dataset == "vim2":
        return Vim2PrepareSource(raw_dir, config)
    return RawDataset(raw_dir, config)


def _split_is_current(path, config_json, sources):
    if not os.path.exists(path):
        return False
    try:
        with schema.open_prepared(path) as handle:
            return (handle.attrs.get("config") == config_json
                    and json.loads(handle.attrs.get("sources", "{}")) == sources)
    except DataError:
        return False


def prepare_dataset(raw_dir, out_dir, config=None, splits=SPLITS, force=False, show_progress=True,
                    pipeline=True):
    """Prepare a raw dataset into ``out_dir/{train,test}.h5``.

    Parameters
    ----------
    raw_dir, out_dir : str
        ``raw_dir``: a raw dataset (``data.dataset=raw``) or a vim-2 folder with the centres of
        ``estimate-rf`` (``data.dataset=vim2``).
    config : Config, optional
        Its ``data`` section (and ``vim2`` for vim-2); defaults to the paper's values.
    splits : sequence of {"train", "test"}
    force : bool
        Rebuild splits that are already prepared from the same sources and config.
    show_progress : bool
    pipeline : bool
        Overlap the stages: the next run is read (signals, video decoding) in a thread while the
        current one is warped and rendered, and runs are written to HDF5 in another thread
        (numpy, scipy, ffmpeg and h5py's writes run without the GIL). ``False`` runs everything
        one run after the other in this thread; the files are identical either way.

    Returns
    -------
    dict of str -> str
        Split name -> prepared file path.
    """
    config = config or Config()
    log = get_logger()
    raw = open_source(raw_dir, config)
    log_retinotopy(raw.retinotopy, log)
    os.makedirs(out_dir, exist_ok=True)
    recorded = config_to_dict(config)["data"]
    if config.data.dataset == "vim2":
        # subject, rates and run length decide the samples too (an up-to-date check sees them)
        recorded["vim2"] = config_to_dict(config)["vim2"]
    config_json = json.dumps(recorded, sort_keys=True)
    data_cfg = config.data
    written = {}
    for split in splits:
        if split not in SPLITS:
            raise DataError(f"splits: expected values in {SPLITS}, got {split!r}")
        path = os.path.join(out_dir, f"{split}.h5")
        sources = raw.sources(split)
        if not force and _split_is_current(path, config_json, sources):
            log.info("%s: up to date, skipped (use --force to rebuild)", path)
            written[split] = path
            continue
        runs = raw.runs(split)
        attrs = {"split": split, "package_version": __version__, "config": config_json,
                 "sources": json.dumps(sources, sort_keys=True), "raw_dir": os.path.abspath(raw_dir),
                 "retinotopy": json.dumps(raw.retinotopy, sort_keys=True)}
        n_voxels = [raw.mappers[roi].n_voxels for roi in data_cfg.rois]
        with schema.PreparedWriter(path, data_cfg.rois, n_voxels, raw.centres,
                                   data_cfg.image_size, attrs, data_cfg.compression,
                                   background=pipeline) as writer:
            with contextlib.closing(_load_runs(raw, runs, split, prefetch=pipeline)) as loaded:
                for run in progress(runs, desc=f"prepare {split}", enabled=show_progress,
                                    unit="run"):
                    _prepare_run(raw, run, next(loaded), writer)
        log.info("%s: %d runs written, %d frames dropped at run ends (window past the last volume)",
                 path, len(runs), writer.n_dropped)
        written[split] = path
    return written


def _load_run(raw, run, split):
    """Read one run: its signals, its decoded frames and the frame/volume plan."""
    data_cfg = raw.config.data
    signals = raw.load_signals(run, split)
    frames = raw.load_frames(run, split)
    plan = plan_run(frames.shape[0], signals.shape[0], data_cfg.shift, data_cfg.n_trs, raw.tr,
                    data_cfg.max_unused_s, video=run["video"], run=run["name"])
    get_logger().info("%s", plan["message"])
    return signals, frames, plan


def _load_runs(raw, runs, split, prefetch=True):
    """Yield :func:`_load_run` of each run in order; with ``prefetch`` the next run is read in a
    thread while the caller works on the current one (one run ahead: bounded memory)."""
    if not prefetch:
        for run in runs:
            yield _load_run(raw, run, split)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-read") as pool:
        pending = pool.submit(_load_run, raw, runs[0], split) if runs else None
        for k in range(len(runs)):
            loaded = pending.result()
            pending = pool.submit(_load_run, raw, runs[k + 1], split) if k + 1 < len(runs) else None
            yield loaded


def _prepare_run(raw, run, loaded, writer):
    """Warp and render one read run (see :func:`_load_run`) and hand it to the writer."""
    writer.add_run(*_render_run(raw, run, loaded))


def _render_run(raw, run, loaded):
    """Warp a run's frames and render its RFSimages: the arguments of ``PreparedWriter.add_run``."""
    data_cfg = raw.config.data
    signals, frames, plan = loaded
    frame_index, first_volumes = plan["frames"], plan["first_volumes"]
    frames = frames[: frame_index.size]
    if data_cfg.fisheye:
        targets = cached_warp(data_cfg.image_size, data_cfg.max_ratio).warp_nchw(
            frames, scale=1.0 / 255.0, dtype=np.float16)
    else:
        targets = (np.transpose(frames, (0, 3, 1, 2)) / 255.0).astype(np.float16)
    voxels = raw.roi_voxels(signals, run["signals"][0])
    rf_images = np.empty((signals.shape[0], len(data_cfg.rois), data_cfg.image_size,
                          data_cfg.image_size), np.float32)
    for k, roi in enumerate(data_cfg.rois):
        rf_images[:, k] = raw.mappers[roi].render(voxels[roi])
    return (run["name"], targets, rf_images, voxels, frame_index, first_volumes, plan["n_dropped"])
