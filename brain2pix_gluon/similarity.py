"""How alike two sets of images or feature vectors are, row by row: pure NumPy.

Pearson's r and Euclidean distance between matching rows, PixCorr (optionally inside a mask of
the pixels to score) and two-way identification. The evaluation
(:mod:`brain2pix_gluon.evaluation.metrics`), the trainer's held-out scores for TensorBoard and the
baselines all use these; they depend on nothing else in the package but its errors.
"""

import numpy as np

from .errors import DataError

__all__ = ["zscore_rows", "pearson_rows", "euclidean_rows", "masked_pixels", "grayscale",
           "pixcorr", "two_way_identification", "check_mask", "row_pairs"]


def check_mask(mask, shape, name):
    """Validate a (H, W) mask against images of shape (..., H, W); None stays None."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != tuple(shape[-2:]):
        raise DataError(f"{name}: mask expected a boolean array of shape {tuple(shape[-2:])}, got "
                        f"{mask.dtype} {mask.shape}")
    if not mask.any():
        raise DataError(f"{name}: mask selects no pixel")
    return mask


def masked_pixels(images, mask):
    """(n, C, H, W) -> (n, C * mask.sum()) pixels inside the mask (all pixels when None)."""
    images = np.asarray(images)
    if mask is None:
        return images.reshape(len(images), -1)
    return images[..., mask].reshape(len(images), -1)


def row_pairs(a, b, name):
    """Two arrays as float64 rows of equal shape (n, d); ``name`` is the caller, for the error."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    if a.shape != b.shape:
        raise DataError(f"{name}: expected two arrays of the same shape, got {a.shape} and {b.shape}")
    return a, b


def zscore_rows(x, dtype=np.float64):
    """Each row minus its mean, divided by its norm (so a dot product is Pearson's r).

    Parameters
    ----------
    x : array_like, shape (n, ...)
    dtype : numpy dtype
        Of the result (baseline 1 retrieves in float32 to halve its memory).

    Returns
    -------
    ndarray, shape (n, prod(...))
        Rows without variance are 0.
    """
    x = np.asarray(x, dtype).reshape(len(x), -1)
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def pearson_rows(a, b):
    """Pearson's r between matching rows (features or pixels of one frame each).

    Parameters
    ----------
    a, b : ndarray, shape (n, ...)

    Returns
    -------
    ndarray, shape (n,)
        NaN where a row is constant.
    """
    a, b = row_pairs(a, b, "pearson_rows")
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=1) / denom


def euclidean_rows(a, b):
    """Euclidean distance between matching rows; shape (n,)."""
    a, b = row_pairs(a, b, "euclidean_rows")
    return np.sqrt(((a - b) ** 2).sum(axis=1))


def grayscale(images):
    """(n, 3, H, W) RGB in [0, 1] -> (n, H, W) luminance (ITU-R BT.601 weights)."""
    images = np.asarray(images, np.float64)
    return 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]


def pixcorr(reconstructions, targets, mask=None):
    """PixCorr: Pearson's r between the pixels (all channels) of each reconstruction and target.

    Parameters
    ----------
    reconstructions, targets : ndarray, shape (n, 3, H, W)
    mask : ndarray of bool, shape (H, W), optional
        Only these pixels are correlated (e.g. :func:`fisheye_valid_mask`).

    Returns
    -------
    ndarray, shape (n,)
    """
    mask = check_mask(mask, np.shape(reconstructions), "pixcorr")
    return pearson_rows(masked_pixels(reconstructions, mask), masked_pixels(targets, mask))


def two_way_identification(rec_features, gt_features):
    """Two-way identification by correlation (chance 50 %).

    For each frame i, the fraction of other frames j for which corr(rec_i, gt_i) exceeds
    corr(rec_i, gt_j); returned per frame.

    Parameters
    ----------
    rec_features, gt_features : ndarray, shape (n, d)

    Returns
    -------
    ndarray, shape (n,)
    """
    rec, gt = zscore_rows(rec_features), zscore_rows(gt_features)
    n = len(rec)
    if n < 2:
        raise DataError(f"two-way identification needs at least 2 frames, got {n}")
    corr = rec @ gt.T
    correct = np.diag(corr)[:, None]
    wins = (correct > corr).sum(axis=1)        # the diagonal itself never counts
    return wins / (n - 1)
