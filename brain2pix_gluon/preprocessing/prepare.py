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
from .receptive_fields import RFMapper
from .retina import cached_warp
from .signals import alignment_index, select_roi_voxels, zscore

__all__ = ["prepare_dataset", "RawDataset", "SPLITS"]

SPLITS = ("train", "test")


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
            cols, rows = load_rf_centres(self.centre_paths[0], masks=self.masks)
        else:
            col = find_first(self.raw_dir, ("col_centers_112px.mat", "col_centers.npz"),
                             "column RF centres")
            row = find_first(self.raw_dir, ("row_centers_112px.mat", "row_centers.npz"),
                             "row RF centres")
            self.centre_paths = (col, row)
            cols, rows = load_rf_centres(col, row, masks=self.masks)
        self.cols, self.rows = cols, rows
        self.n_brain_voxels = next(iter(self.masks.values())).shape[0]
        self.mappers, self.centres = {}, {}
        for roi in config.data.rois:
            col = np.concatenate([cols[roi + p][np.isfinite(cols[roi + p]) & np.isfinite(rows[roi + p])]
                                  for p in ("d", "v")])
            row = np.concatenate([rows[roi + p][np.isfinite(cols[roi + p]) & np.isfinite(rows[roi + p])]
                                  for p in ("d", "v")])
            if col.size == 0:
                raise DataError(f"ROI {roi}: no voxel has a finite RF centre in {self.centre_paths}")
            self.mappers[roi] = RFMapper(col, row, config.data.image_size,
                                         config.data.rf_index_order, source=self.centre_paths[0])
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
        for path in run["signals"]:
            signals = load_run(path)
            if signals.shape[1] != self.n_brain_voxels:
                raise DataError(f"run {path!s}: expected {self.n_brain_voxels} voxels (the ROI "
                                f"masks' size), got signals of shape {signals.shape}")
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
                 "sources": json.dumps(sources, sort_keys=True), "raw_dir": os.path.abspath(raw_dir)}
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
    frames = read_video(run["video"], data_cfg.image_size, data_cfg.tr)
    needed = n_volumes - data_cfg.shift - data_cfg.n_trs + 1
    if frames.shape[0] < needed:
        raise DataError(
            f"video {run['video']!s} is shorter than its run: {frames.shape[0]} frames at one per "
            f"TR ({data_cfg.tr} s), but run {run['name']!r} has {n_volumes} volumes and needs at "
            f"least {needed} frames (shift {data_cfg.shift}, window {data_cfg.n_trs})")
    frame_index, first_volumes, n_dropped = alignment_index(
        frames.shape[0], n_volumes, data_cfg.shift, data_cfg.n_trs)
    frames = frames[: frame_index.size]
    if data_cfg.fisheye:
        targets = cached_warp(data_cfg.image_size, data_cfg.max_ratio).warp_nchw(
            frames, scale=1.0 / 255.0, dtype=np.float16)
    else:
        targets = (np.transpose(frames, (0, 3, 1, 2)) / 255.0).astype(np.float16)
    voxels = raw.roi_voxels(signals, run["signals"][0])
    rf_images = np.stack([raw.mappers[roi].render(voxels[roi]) for roi in data_cfg.rois], axis=1)
    writer.add_run(run["name"], targets, rf_images, voxels,
                   frame_index, first_volumes, n_dropped)
