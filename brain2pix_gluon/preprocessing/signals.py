"""Voxel time series: ROI selection, per-run z-scoring and hemodynamic alignment (paper §2)."""

import numpy as np

from ..config import DataConfig
from ..errors import DataError

__all__ = ["zscore_runs", "zscore", "select_roi_voxels", "alignment_index", "plan_run"]


def zscore(signals):
    """Z-score each voxel over time (population std); constant voxels become 0, NaN becomes 0.

    Parameters
    ----------
    signals : ndarray, shape (n_volumes, n_voxels)

    Returns
    -------
    ndarray, shape (n_volumes, n_voxels), float32
    """
    arr = np.asarray(signals, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (arr - arr.mean(axis=0)) / arr.std(axis=0)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def zscore_runs(runs):
    """Z-score every run separately (training runs).

    Parameters
    ----------
    runs : sequence of ndarray, each shape (n_volumes_r, n_voxels)

    Returns
    -------
    list of ndarray, float32
    """
    return [zscore(run) for run in runs]


def select_roi_voxels(signals, masks, roi, col_centers, row_centers, source=None, parts=None):
    """Voxels of one ROI, part after part (dorsal then ventral by default), keeping those with a
    finite RF centre.

    Parameters
    ----------
    signals : ndarray, shape (n_volumes, n_brain_voxels)
        One run, already flattened (time x voxels).
    masks : dict of str -> ndarray of bool, shape (n_brain_voxels,)
        ``{"V1d": ..., "V1v": ...}``.
    roi : str
        "V1", "V2" or "V3".
    col_centers, row_centers : dict of str -> ndarray, shape (n_mask_voxels,)
        Centres of the voxels of each mask, in mask order (NaN = no estimate).
    source : str, optional
        File the signals came from, for errors.
    parts : sequence of str, optional
        Mask keys that make up the ROI, in order; default ``(roi + "d", roi + "v")`` (dorsal,
        ventral). vim-2 splits ROIs by hemisphere: ``("V1lh", "V1rh")``.

    Returns
    -------
    voxels : ndarray, shape (n_volumes, n_roi_voxels)
    cols, rows : ndarray, shape (n_roi_voxels,)
    """
    keys = (roi + "d", roi + "v") if parts is None else tuple(parts)
    if not keys:
        raise DataError(f"ROI {roi}: expected at least one mask key in parts, got none")
    parts, cols, rows = [], [], []
    for key in keys:
        if key not in masks:
            raise DataError(f"ROI mask key {key!r} missing; available keys: {sorted(masks)}")
        mask = masks[key]
        if mask.shape[0] != signals.shape[1]:
            raise DataError(
                f"ROI mask {key!r}{' for ' + str(source) if source else ''}: expected "
                f"{signals.shape[1]} entries (the run's voxels), got mask shape {mask.shape}")
        finite = np.isfinite(col_centers[key]) & np.isfinite(row_centers[key])
        parts.append(signals[:, mask][:, finite])
        cols.append(col_centers[key][finite])
        rows.append(row_centers[key][finite])
    return np.concatenate(parts, axis=1), np.concatenate(cols), np.concatenate(rows)


def alignment_index(n_frames, n_volumes, shift=DataConfig.shift, n_trs=DataConfig.n_trs):
    """Which frames get a full window of volumes, and the first volume of each.

    Frame ``t`` uses volumes ``t + shift ... t + shift + n_trs - 1`` of the same run; frames whose
    window runs past the end of the run are dropped.

    Parameters
    ----------
    n_frames, n_volumes : int
        Frames and volumes of the run.
    shift, n_trs : int

    Returns
    -------
    frames : ndarray of int64, shape (n_samples,)
    first_volumes : ndarray of int64, shape (n_samples,)
    n_dropped : int
    """
    if shift < 0 or n_trs < 1:
        raise DataError(f"alignment: expected shift >= 0 and n_trs >= 1, got {shift}, {n_trs}")
    last_frame = min(n_frames, n_volumes - shift - n_trs + 1)
    frames = np.arange(max(last_frame, 0), dtype=np.int64)
    return frames, frames + shift, int(n_frames - frames.size)


def plan_run(n_frames, n_volumes, shift=DataConfig.shift, n_trs=DataConfig.n_trs, tr=DataConfig.tr,
             max_unused_s=DataConfig.max_unused_s, video="video",
             run="run"):
    """Samples of one run, as the authors' code makes them, with the checks that catch a wrong pairing.

    The number of samples comes from the video: frame ``t`` uses volumes ``t + shift ... t + shift
    + n_trs - 1``. Volumes after the last window are not used (scanning goes on after the
    stimulus) and are counted; frames whose window runs past the run are dropped and counted.

    Parameters
    ----------
    n_frames : int
        Frames of the video at one per TR.
    n_volumes : int
        Volumes of the run.
    shift, n_trs : int
    tr : float
        Seconds per volume (for the messages).
    max_unused_s : float
        More unused volumes than this (in seconds) after the last window is an error.
    video, run : str
        Names for the messages.

    Returns
    -------
    dict
        ``frames``, ``first_volumes`` (int64 arrays, shape (n_samples,)), ``n_dropped``,
        ``n_unused`` (volumes after the last window) and ``message`` (the log line).

    Raises
    ------
    DataError
        When the video is longer than the run can serve (more than ``shift + n_trs`` frames
        dropped: a run that stops with its video drops ``shift + n_trs - 1``, plus one TR of
        rounding of the video's length), or when more than ``max_unused_s`` of volumes are left
        unused.
    """
    frames, first_volumes, n_dropped = alignment_index(n_frames, n_volumes, shift, n_trs)
    span = shift + n_trs - 1
    n_unused = int(n_volumes - (frames[-1] + shift + n_trs)) if frames.size else int(n_volumes)
    if n_dropped > span + 1:
        raise DataError(
            f"video {video!s} is longer than run {run!r} can serve: {n_frames} frames at one per "
            f"TR ({n_frames * tr:.1f} s) but the run's {n_volumes} volumes give full windows "
            f"(volumes t+{shift} ... t+{span}) to only {frames.size} frames; {n_dropped} frames "
            f"({n_dropped * tr:.1f} s) would be dropped, at most {span + 1} are expected at a "
            f"run's end. Is this the run's video?")
    if n_unused * tr > max_unused_s:
        raise DataError(
            f"run {run!r} is far longer than its video {video!s}: {n_volumes} volumes "
            f"({n_volumes * tr:.1f} s) for {n_frames} frames ({n_frames * tr:.1f} s); {n_unused} "
            f"volumes ({n_unused * tr:.1f} s) after the last frame's window would be unused, more "
            f"than data.max_unused_s = {max_unused_s:g} s. Probably the wrong video for this run")
    message = (f"{run}: {n_frames} frames from {video!s} -> {frames.size} samples; {n_volumes} "
               f"volumes, {n_unused} unused after the last window ({n_unused * tr:.1f} s), "
               f"{n_dropped} frames dropped (window past the run's end)")
    return {"frames": frames, "first_volumes": first_volumes, "n_dropped": int(n_dropped),
            "n_unused": n_unused, "message": message}
