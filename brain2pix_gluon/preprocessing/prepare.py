"""Raw fMRI + video -> prepared HDF5 RFSimage data (``brain2pix prepare``).

Each run is processed on its own (bounded memory): signals are read, z-scored per run (training
runs), split into ROIs (dorsal then ventral voxels with a finite RF centre), rendered as RFSimages
(eq. 2), aligned with the frames (frame t uses volumes t+shift ... t+shift+n_trs-1) and appended
to the split's HDF5 file together with the fisheye-warped frames.
"""

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
from .receptive_fields import RFMapper, format_retinotopy, retinotopy_report
from .retina import cached_warp
from .signals import plan_run, select_roi_voxels, zscore

__all__ = ["prepare_dataset", "RawDataset", "SPLITS", "orient_centres", "log_retinotopy"]

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


class RawDataset:
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
        self.config = config
        self.mask_path = find_first(self.raw_dir, ("roimask.mat", "roimask.npz", "masks"),
                                    "ROI masks")
        self.masks = load_roi_masks(self.mask_path)
        if os.path.exists(os.path.join(self.raw_dir, "rf_centres.csv")):
            self.centre_paths = (os.path.join(self.raw_dir, "rf_centres.csv"),)
            cols, rows = load_rf_centres(self.centre_paths[0], masks=self.masks,
                                         mask_source=self.mask_path)
        else:
            col = find_first(self.raw_dir, ("col_centers_112px.mat", "col_centers.npz"),
                             "column RF centres")
            row = find_first(self.raw_dir, ("row_centers_112px.mat", "row_centers.npz"),
                             "row RF centres")
            self.centre_paths = (col, row)
            cols, rows = load_rf_centres(col, row, masks=self.masks, mask_source=self.mask_path)
        cols, rows = orient_centres(cols, rows, config.data.rf_swap_axes, config.data.rf_flip_y)
        x_src, y_src = self.centre_paths[0], self.centre_paths[-1]
        self.axis_sources = (y_src, x_src) if config.data.rf_swap_axes else (x_src, y_src)
        self.cols, self.rows = cols, rows  # now x (horizontal) and y (vertical) of every voxel
        self.n_brain_voxels = next(iter(self.masks.values())).shape[0]
        self.mappers, self.centres, parts = {}, {}, {}
        for roi in ("V1", "V2", "V3"):
            parts[roi] = {}
            for p in ("d", "v"):
                finite = np.isfinite(cols[roi + p]) & np.isfinite(rows[roi + p])
                parts[roi][p] = (cols[roi + p][finite], rows[roi + p][finite])
        self.retinotopy = retinotopy_report(parts, config.data.rf_swap_axes, config.data.rf_flip_y)
        for roi in config.data.rois:
            col = np.concatenate([parts[roi]["d"][0], parts[roi]["v"][0]])
            row = np.concatenate([parts[roi]["d"][1], parts[roi]["v"][1]])
            if col.size == 0:
                raise DataError(f"ROI {roi}: no voxel has a finite RF centre in {self.centre_paths}")
            self.mappers[roi] = RFMapper(col, row, config.data.image_size, config.data.rf_layout,
                                         source=self.axis_sources)
            self.centres[roi] = np.stack([col, row], axis=1)

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

    def load_signals(self, run, split):
        """Voxel signals of one run (test clips: repetitions averaged), z-scored as configured.

        Returns
        -------
        ndarray, shape (n_volumes, n_brain_voxels), float32
        """
        reps = []
        used = np.zeros(self.n_brain_voxels, bool)
        for roi in self.config.data.rois:
            for p in ("d", "v"):
                idx = np.flatnonzero(self.masks[roi + p])
                used[idx[np.isfinite(self.cols[roi + p]) & np.isfinite(self.rows[roi + p])]] = True
        for path in run["signals"]:
            signals = load_run(path, finite=False)
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
            if reps and signals.shape != reps[0].shape:
                raise DataError(f"repetitions of {run['name']!r}: {path!s} has shape "
                                f"{signals.shape}, expected {reps[0].shape} like {run['signals'][0]}")
            reps.append(signals)
        signals = np.mean(reps, axis=0, dtype=np.float64) if len(reps) > 1 else reps[0]
        if split == "train" or self.config.data.zscore_test:
            return zscore(signals)
        return np.asarray(signals, np.float32)

    def roi_voxels(self, signals, source):
        """Split a run's signals into ROIs: dict roi -> (n_volumes, n_roi_voxels)."""
        return {roi: select_roi_voxels(signals, self.masks, roi, self.cols, self.rows, source)[0]
                for roi in self.config.data.rois}


def _split_is_current(path, config_json, sources):
    if not os.path.exists(path):
        return False
    try:
        with schema.open_prepared(path) as handle:
            return (handle.attrs.get("config") == config_json
                    and json.loads(handle.attrs.get("sources", "{}")) == sources)
    except DataError:
        return False


def prepare_dataset(raw_dir, out_dir, config=None, splits=SPLITS, force=False, show_progress=True):
    """Prepare a raw dataset into ``out_dir/{train,test}.h5``.

    Parameters
    ----------
    raw_dir, out_dir : str
    config : Config, optional
        Only its ``data`` section is used; defaults to the paper's values.
    splits : sequence of {"train", "test"}
    force : bool
        Rebuild splits that are already prepared from the same sources and config.
    show_progress : bool

    Returns
    -------
    dict of str -> str
        Split name -> prepared file path.
    """
    config = config or Config()
    log = get_logger()
    raw = RawDataset(raw_dir, config)
    log_retinotopy(raw.retinotopy, log)
    os.makedirs(out_dir, exist_ok=True)
    config_json = json.dumps(config_to_dict(config)["data"], sort_keys=True)
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
                                   data_cfg.image_size, attrs, data_cfg.compression) as writer:
            for run in progress(runs, desc=f"prepare {split}", enabled=show_progress, unit="run"):
                _prepare_run(raw, run, split, writer)
        log.info("%s: %d runs written, %d frames dropped at run ends (window past the last volume)",
                 path, len(runs), writer.n_dropped)
        written[split] = path
    return written


def _prepare_run(raw, run, split, writer):
    data_cfg = raw.config.data
    signals = raw.load_signals(run, split)
    n_volumes = signals.shape[0]
    frames = read_video(run["video"], data_cfg.image_size, data_cfg.tr, data_cfg.video_backend,
                        data_cfg.video_aspect, data_cfg.reencode)
    plan = plan_run(frames.shape[0], n_volumes, data_cfg.shift, data_cfg.n_trs, data_cfg.tr,
                    data_cfg.max_unused_s, video=run["video"], run=run["name"])
    get_logger().info("%s", plan["message"])
    frame_index, first_volumes = plan["frames"], plan["first_volumes"]
    frames = frames[: frame_index.size]
    if data_cfg.fisheye:
        targets = cached_warp(data_cfg.image_size, data_cfg.max_ratio).warp_nchw(
            frames, scale=1.0 / 255.0, dtype=np.float16)
    else:
        targets = (np.transpose(frames, (0, 3, 1, 2)) / 255.0).astype(np.float16)
    voxels = raw.roi_voxels(signals, run["signals"][0])
    rf_images = np.stack([raw.mappers[roi].render(voxels[roi]) for roi in data_cfg.rois], axis=1)
    writer.add_run(run["name"], targets, rf_images, voxels,
                   frame_index, first_volumes, plan["n_dropped"])
