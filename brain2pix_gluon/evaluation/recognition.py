"""What a person recognises in a reconstruction of the embedded world: the set, and where the
characters are.

Pixel correlations barely tell a reconstruction that shows the right place with a dark blob where
a character stands from a blur of the right colours; a viewer tells them apart at once. The
embedded world (:mod:`brain2pix_gluon.data.world`) labels every frame with its set and its
characters' positions, so two things a viewer checks can be scored on every test frame, the same
way for every decoder, the ground truth included:

* **Which set is shown.** Each frame is described by its colour layout: the valid field of the
  fisheye frame averaged over a coarse grid (``grid`` x ``grid`` cells, RGB), blurred enough that
  a blurry reconstruction and a sharp frame of the same place look alike. A reconstruction is
  assigned the set whose mean training frame layout it correlates with most (nearest centroid,
  Pearson r; centroids from the *ground-truth training frames*, never from a decoder).
* **Where the characters are.** Where a reconstruction departs most from what its set usually
  looks like: the absolute difference between the frame and the mean training frame of its
  (true) set, summed over colours, smoothed with a Gaussian of ``smooth_px``, inside the valid
  field; its peak is the predicted position. Scored on frames where at least one character is
  visible (``min_visible`` of it in view, its centre in the valid field): the distance in pixels
  from the peak to the nearest such character's centre, and a hit when the peak falls within
  that character's radius (of a disc of its area in the target).

Both are information about a decoder, never a verdict of the learning check.
"""

import numpy as np

from ..errors import DataError

__all__ = ["layout_features", "SetClassifier", "localise", "recognition_per_frame",
           "recognition_summary", "compare_recognition", "world_classifier", "RECOGNITION_KEYS"]

# per-frame keys of recognition_per_frame(), for tables and tests
RECOGNITION_KEYS = ("set_correct", "location_error", "location_hit")


def layout_features(frames, mask, grid=12):
    """The colour layout of frames: the valid field averaged over a coarse grid.

    Parameters
    ----------
    frames : ndarray, shape (n, 3, S, S)
        Frames in [0, 1].
    mask : ndarray of bool, shape (S, S)
        The fisheye frame's valid field.
    grid : int
        Cells per side; ``S`` need not be a multiple (cells are pixel ranges as even as possible).

    Returns
    -------
    ndarray, shape (n, 3 * n_cells), float64
        Per cell whose pixels are at least half inside the field, the mean of each colour over
        the cell's valid pixels.
    """
    frames = np.asarray(frames, np.float64)
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise DataError(f"layout_features: expected frames of shape (n, 3, S, S), got "
                        f"{frames.shape}")
    size = frames.shape[-1]
    edges = np.linspace(0, size, grid + 1).round().astype(int)
    cells = []
    for r0, r1 in zip(edges[:-1], edges[1:]):
        for c0, c1 in zip(edges[:-1], edges[1:]):
            inside = mask[r0:r1, c0:c1]
            if inside.mean() >= 0.5:
                block = frames[:, :, r0:r1, c0:c1]
                cells.append(block[:, :, inside].mean(axis=-1))           # (n, 3)
    return np.concatenate(cells, axis=1)


def _zscore(rows):
    rows = rows - rows.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norm > 0, norm, 1.0)


class SetClassifier:
    """Nearest-centroid classifier of the set a frame shows, from its colour layout.

    Parameters
    ----------
    frames : ndarray, shape (n, 3, S, S)
        Ground-truth training frames.
    sets : ndarray of int, shape (n,)
        Their sets.
    n_sets : int
    mask : ndarray of bool, shape (S, S)
    grid : int
        See :func:`layout_features`.

    Attributes
    ----------
    centroids : ndarray, shape (n_sets, d)
        Mean layout of each set's training frames (NaN rows for a set without frames).
    mean_frames : ndarray, shape (n_sets, 3, S, S)
        Mean training frame of each set (for :func:`localise`).
    """

    def __init__(self, frames, sets, n_sets, mask, grid=12):
        frames = np.asarray(frames, np.float32)
        sets = np.asarray(sets, int)
        if len(frames) != len(sets):
            raise DataError(f"SetClassifier: {len(frames)} frames but {len(sets)} set labels")
        self.mask, self.grid, self.n_sets = np.asarray(mask, bool), grid, int(n_sets)
        feats = layout_features(frames, self.mask, grid)
        self.centroids = np.full((self.n_sets, feats.shape[1]), np.nan)
        self.mean_frames = np.zeros((self.n_sets,) + frames.shape[1:], np.float32)
        for s in range(self.n_sets):
            if np.any(sets == s):
                self.centroids[s] = feats[sets == s].mean(axis=0)
                self.mean_frames[s] = frames[sets == s].mean(axis=0)

    def predict(self, frames):
        """The set each frame shows, by the highest Pearson r with a set's centroid.

        Returns
        -------
        ndarray of int, shape (n,)
        """
        feats = _zscore(layout_features(frames, self.mask, self.grid))
        known = np.isfinite(self.centroids[:, 0])
        corr = feats @ _zscore(np.nan_to_num(self.centroids)).T
        corr[:, ~known] = -np.inf
        return np.argmax(corr, axis=1)


def localise(frames, backgrounds, mask, smooth_px=3.0):
    """Where each frame departs most from its background: the predicted character position.

    Parameters
    ----------
    frames : ndarray, shape (n, 3, S, S)
    backgrounds : ndarray, shape (n, 3, S, S)
        What each frame's set usually looks like (its set's mean training frame).
    mask : ndarray of bool, shape (S, S)
    smooth_px : float
        SD of the Gaussian that smooths the difference map.

    Returns
    -------
    ndarray, shape (n, 2)
        Column (x) and row (y) of each map's peak inside the field.
    """
    from scipy.ndimage import gaussian_filter

    diff = np.abs(np.asarray(frames, np.float32) - np.asarray(backgrounds, np.float32)).sum(1)
    diff = gaussian_filter(diff, (0, smooth_px, smooth_px))
    diff[:, ~np.asarray(mask, bool)] = -np.inf
    flat = diff.reshape(len(diff), -1).argmax(axis=1)
    rows, cols = np.unravel_index(flat, diff.shape[1:])
    return np.stack([cols, rows], axis=1).astype(np.float64)


def _scorable(characters, mask, min_visible):
    """Characters worth scoring: enough of them in view, the centre inside the valid field."""
    x, y, visible = characters[..., 0], characters[..., 1], characters[..., 3]
    size = mask.shape[0]
    ok = (visible >= min_visible) & np.isfinite(x) & np.isfinite(y)
    col = np.clip(np.nan_to_num(np.round(x)).astype(int), 0, size - 1)
    row = np.clip(np.nan_to_num(np.round(y)).astype(int), 0, size - 1)
    return ok & mask[row, col]


def recognition_per_frame(images, sets, characters, classifier, min_visible=0.5,
                          smooth_px=3.0):
    """Per-frame set identification and character localisation of reconstructions.

    Parameters
    ----------
    images : ndarray, shape (n, 3, S, S)
        Reconstructions (or the ground truth, to see what the scoring itself reaches).
    sets : ndarray of int, shape (n,)
        The true set of each frame.
    characters : ndarray, shape (n, n_characters, 4)
        The world's labels (:data:`~brain2pix_gluon.data.world.LABEL_FIELDS`).
    classifier : SetClassifier
    min_visible : float
        A character counts when at least this fraction of it is in view.
    smooth_px : float

    Returns
    -------
    dict of str -> ndarray, shape (n,)
        ``set_correct`` (1.0 or 0.0), ``location_error`` (pixels; NaN on frames without a
        scorable character) and ``location_hit`` (1.0, 0.0, or NaN likewise).
    """
    images = np.asarray(images, np.float32)
    sets = np.asarray(sets, int)
    characters = np.asarray(characters, np.float64)
    if not len(images) == len(sets) == len(characters):
        raise DataError(f"recognition_per_frame: {len(images)} images, {len(sets)} set labels "
                        f"and {len(characters)} character labels; expected one of each per frame")
    set_correct = (classifier.predict(images) == sets).astype(np.float64)
    peaks = localise(images, classifier.mean_frames[sets], classifier.mask, smooth_px)
    scorable = _scorable(characters, classifier.mask, min_visible)        # (n, C)
    dist = np.hypot(characters[..., 0] - peaks[:, None, 0], characters[..., 1] - peaks[:, None, 1])
    dist = np.where(scorable, dist, np.inf)
    radius = np.sqrt(np.maximum(characters[..., 2], 0.0) / np.pi)
    has = scorable.any(axis=1)
    error = np.where(has, dist.min(axis=1), np.nan)
    hit = np.where(has, (dist <= radius).any(axis=1).astype(np.float64), np.nan)
    return {"set_correct": set_correct, "location_error": error, "location_hit": hit}


def recognition_summary(per_frame):
    """Means of :func:`recognition_per_frame`'s values.

    Returns
    -------
    dict
        ``set_accuracy``, ``location_error`` (pixels), ``location_hit_rate``, ``n_frames`` and
        ``n_located`` (frames with a scorable character).
    """
    located = np.isfinite(per_frame["location_error"])
    return {"set_accuracy": float(np.mean(per_frame["set_correct"])),
            "location_error": float(np.nanmean(per_frame["location_error"]))
            if located.any() else float("nan"),
            "location_hit_rate": float(np.nanmean(per_frame["location_hit"]))
            if located.any() else float("nan"),
            "n_frames": int(len(per_frame["set_correct"])), "n_located": int(located.sum())}


def compare_recognition(model, other):
    """Per-frame tests of one decoder's recognition scores against another's, same frames.

    Parameters
    ----------
    model, other : dict
        :func:`recognition_per_frame` of each.

    Returns
    -------
    dict
        ``set`` and ``hit``: exact McNemar tests (:func:`~.stats.mcnemar`, one-sided: the model
        right more often); ``error``: paired t-test and sign test of the localisation error
        (:func:`~.stats.paired_comparison`, lower is better), on frames both can be scored.
    """
    from .stats import mcnemar, paired_comparison

    out = {"set": mcnemar(model["set_correct"], other["set_correct"]),
           "hit": mcnemar(model["location_hit"], other["location_hit"])}
    both = np.isfinite(model["location_error"]) & np.isfinite(other["location_error"])
    out["error"] = (paired_comparison(model["location_error"][both],
                                      other["location_error"][both], higher_is_better=False)
                    if both.sum() >= 2 else None)
    return out


def world_classifier(train_path, labels, mask, grid=12):
    """The set classifier of a prepared training split of the embedded world.

    Parameters
    ----------
    train_path : str
        Prepared ``train.h5``.
    labels : dict
        :func:`~brain2pix_gluon.data.simulation.read_labels` of the dataset it was prepared from.
    mask : ndarray of bool, shape (S, S)

    Returns
    -------
    SetClassifier
    """
    from ..data.simulation import labels_for
    from ..io.prepared import PreparedArrays, PreparedSplit

    split = PreparedSplit(train_path)
    sets, _ = labels_for(labels, split.run_names, split.samples.array)
    with PreparedArrays(train_path, ()) as arrays:
        frames = np.asarray(arrays.frames(), np.float32)[split.samples.frame_row]
    return SetClassifier(frames, sets, len(labels["set_names"]), mask, grid)
