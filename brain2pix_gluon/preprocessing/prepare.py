"""Raw fMRI + video -> prepared HDF5 RFSimage data (``brain2pix prepare``).

Each run is processed on its own (bounded memory): signals are read, z-scored per run (training
runs), split into ROIs (the voxels with a finite RF centre of each part of the ROI: dorsal then
ventral in the raw layout, left then right hemisphere in vim-2), rendered as RFSimages (eq. 2),
aligned with the frames (frame t uses volumes t+shift ... t+shift+n_trs-1) and appended to the
split's HDF5 file together with the fisheye-warped frames. Where masks, centres, signals and
frames come from is a dataset source (:mod:`brain2pix_gluon.io.sources`); :class:`RoiInputs`
turns what a source gives into the ROIs' voxels and RF mappers, the same for every layout.
"""

import contextlib
import os

import numpy as np

from ..config import Config, config_to_dict
from ..errors import DataError
from ..io import prepared as schema
from ..io.sources import open_source
from ..utils import get_logger, progress
from .receptive_fields import RFMapper, format_retinotopy, hemisphere_report, retinotopy_report
from .retina import cached_warp
from .signals import plan_run, select_roi_voxels, zscore

__all__ = ["prepare_dataset", "RoiInputs", "SPLITS", "log_retinotopy"]

SPLITS = ("train", "test")


def log_retinotopy(report, log=None):
    """Log a retinotopy report: the per-ROI lines as info, a misalignment as a warning."""
    log = log or get_logger()
    lines = format_retinotopy(report)
    for line in lines[:-1]:
        log.info("%s", line)
    (log.info if report["verdict"] == "aligned" else log.warning)("%s", lines[-1])


class RoiInputs:
    """The selected ROIs of a dataset source, as ``prepare`` renders them.

    ROI selection (the voxels of each ROI part with a finite centre), z-scoring, the finite check
    of the voxels used, the RF mappers and the orientation report are done here, once for every
    layout.

    Parameters
    ----------
    source : DatasetSource
        :func:`brain2pix_gluon.io.sources.open_source`.

    Attributes
    ----------
    cols, rows : dict of str -> ndarray, shape (n_mask_voxels,)
        x (horizontal) and y (vertical) centre of every mask voxel (NaN = no estimate).
    mappers : dict of str -> RFMapper
    centres : dict of str -> ndarray, shape (n_roi_voxels, 2)
    retinotopy : dict
        Orientation check of the centres (stored in the prepared files).
    """

    def __init__(self, source):
        self.source = source
        self.config = config = source.config
        self.masks, self.parts, self.tr = source.masks, source.parts, source.tr
        self.cols, self.rows = source.centres()
        self.n_brain_voxels = source.n_brain_voxels
        self.mappers, self.centres = {}, {}
        for roi in config.data.rois:
            x, y = self.finite_centres(roi)
            if x.size == 0:
                raise DataError(f"ROI {roi}: no voxel has a finite RF centre in "
                                f"{source.centre_paths}")
            self.mappers[roi] = RFMapper(x, y, config.data.image_size, config.data.rf_layout,
                                         source=source.axis_sources)
            self.centres[roi] = np.stack([x, y], axis=1)
        by_part = {roi: {key[len(roi):]: self.finite_centres(roi, key) for key in keys}
                   for roi, keys in self.parts.items()}
        if source.part_kind == "hemisphere":
            self.retinotopy = hemisphere_report(by_part)
        else:
            self.retinotopy = retinotopy_report(by_part, config.data.rf_swap_axes,
                                                config.data.rf_flip_y)

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
        for path, signals in self.source.read_signals(run):
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

    def roi_voxels(self, signals, where):
        """Split a run's signals into ROIs: dict roi -> (n_volumes, n_roi_voxels)."""
        return {roi: select_roi_voxels(signals, self.masks, roi, self.cols, self.rows, where,
                                       parts=self.parts[roi])[0]
                for roi in self.config.data.rois}


def _split_is_current(path, recorded, sources):
    """True when ``path`` was prepared from the same files with the same settings."""
    if not os.path.exists(path):
        return False
    try:
        split = schema.PreparedSplit(path)
    except DataError:
        return False
    return split.config == recorded and split.sources == sources


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

    Raises
    ------
    FolderInUseError
        When another process prepares into ``out_dir`` (it holds ``out_dir/.lock``).
    """
    from ..locking import FolderLock

    with FolderLock(out_dir, "brain2pix prepare"):      # one writer per prepared folder
        return _prepare(raw_dir, out_dir, config or Config(), splits, force, show_progress,
                        pipeline)


def _prepare(raw_dir, out_dir, config, splits, force, show_progress, pipeline):
    log = get_logger()
    source = open_source(raw_dir, config)
    for roi in config.data.rois:
        if roi not in source.parts:
            raise DataError(f"data.rois: ROI {roi!r} is not in this dataset; expected some of "
                            f"{sorted(source.parts)}")
    inputs = RoiInputs(source)
    log_retinotopy(inputs.retinotopy, log)
    os.makedirs(out_dir, exist_ok=True)
    recorded = config_to_dict(config)["data"]
    recorded["tr"] = source.tr          # the recording's TR (vim-2: the release's, not data.tr)
    if config.data.dataset == "vim2":
        # subject, rates and run length decide the samples too (an up-to-date check sees them)
        recorded["vim2"] = config_to_dict(config)["vim2"]
    data_cfg = config.data
    written = {}
    for split in splits:
        if split not in SPLITS:
            raise DataError(f"splits: expected values in {SPLITS}, got {split!r}")
        path = os.path.join(out_dir, f"{split}.h5")
        sources = source.checksums(split)
        if not force and _split_is_current(path, recorded, sources):
            log.info("%s: up to date, skipped (use --force to rebuild)", path)
            written[split] = path
            continue
        runs = source.runs(split)
        attrs = schema.split_attributes(split, recorded, sources, raw_dir, inputs.retinotopy)
        n_voxels = [inputs.mappers[roi].n_voxels for roi in data_cfg.rois]
        with schema.PreparedWriter(path, data_cfg.rois, n_voxels, inputs.centres,
                                   data_cfg.image_size, attrs, data_cfg.compression,
                                   background=pipeline) as writer:
            with contextlib.closing(_load_runs(inputs, runs, split, prefetch=pipeline)) as loaded:
                for run in progress(runs, desc=f"prepare {split}", enabled=show_progress,
                                    unit="run"):
                    _prepare_run(inputs, run, next(loaded), writer)
        log.info("%s: %d runs written, %d frames dropped at run ends (window past the last volume)",
                 path, len(runs), writer.n_dropped)
        written[split] = path
    return written


def _load_run(inputs, run, split):
    """Read one run: its signals, its decoded frames and the frame/volume plan."""
    data_cfg = inputs.config.data
    signals = inputs.load_signals(run, split)
    frames = inputs.source.load_frames(run)
    plan = plan_run(frames.shape[0], signals.shape[0], data_cfg.shift, data_cfg.n_trs, inputs.tr,
                    data_cfg.max_unused_s, video=run["video"], run=run["name"])
    get_logger().info("%s", plan["message"])
    return signals, frames, plan


def _load_runs(inputs, runs, split, prefetch=True):
    """Yield :func:`_load_run` of each run in order; with ``prefetch`` the next run is read in a
    thread while the caller works on the current one (one run ahead: bounded memory)."""
    if not prefetch:
        for run in runs:
            yield _load_run(inputs, run, split)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-read") as pool:
        pending = pool.submit(_load_run, inputs, runs[0], split) if runs else None
        for k in range(len(runs)):
            loaded = pending.result()
            pending = pool.submit(_load_run, inputs, runs[k + 1], split) if k + 1 < len(runs) else None
            yield loaded


def _prepare_run(inputs, run, loaded, writer):
    """Warp and render one read run (see :func:`_load_run`) and hand it to the writer."""
    writer.add_run(*_render_run(inputs, run, loaded))


def _render_run(inputs, run, loaded):
    """Warp a run's frames and render its RFSimages: the arguments of ``PreparedWriter.add_run``."""
    data_cfg = inputs.config.data
    signals, frames, plan = loaded
    frame_index, first_volumes = plan["frames"], plan["first_volumes"]
    frames = frames[: frame_index.size]
    if data_cfg.fisheye:
        targets = cached_warp(data_cfg.image_size, data_cfg.max_ratio).warp_nchw(
            frames, scale=1.0 / 255.0, dtype=np.float16)
    else:
        targets = (np.transpose(frames, (0, 3, 1, 2)) / 255.0).astype(np.float16)
    voxels = inputs.roi_voxels(signals, run["signals"][0])
    rf_images = np.empty((signals.shape[0], len(data_cfg.rois), data_cfg.image_size,
                          data_cfg.image_size), np.float32)
    for k, roi in enumerate(data_cfg.rois):
        rf_images[:, k] = inputs.mappers[roi].render(voxels[roi])
    return (run["name"], targets, rf_images, voxels, frame_index, first_volumes, plan["n_dropped"])
