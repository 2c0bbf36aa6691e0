"""Per-frame metrics: feature correlation and distance, and the image/video metrics of the field."""

import numpy as np

from ..errors import DataError

__all__ = ["pearson_rows", "euclidean_rows", "pixcorr", "ssim_gray", "psnr", "grayscale",
           "two_way_identification", "flow_epe", "zscore_rows"]


def _pair(a, b, name):
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    if a.shape != b.shape:
        raise DataError(f"{name}: expected two arrays of the same shape, got {a.shape} and {b.shape}")
    return a, b


def zscore_rows(x):
    """Each row minus its mean, divided by its norm (so a dot product is Pearson's r)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
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
    a, b = _pair(a, b, "pearson_rows")
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=1) / denom


def euclidean_rows(a, b):
    """Euclidean distance between matching rows; shape (n,)."""
    a, b = _pair(a, b, "euclidean_rows")
    return np.sqrt(((a - b) ** 2).sum(axis=1))


def grayscale(images):
    """(n, 3, H, W) RGB in [0, 1] -> (n, H, W) luminance (ITU-R BT.601 weights)."""
    images = np.asarray(images, np.float64)
    return 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]


def pixcorr(reconstructions, targets):
    """PixCorr: Pearson's r between the pixels (all channels) of each reconstruction and target."""
    return pearson_rows(reconstructions, targets)


def ssim_gray(reconstructions, targets):
    """SSIM on grayscale frames, Gaussian weights (sigma 1.5), data range 1; shape (n,)."""
    from skimage.metrics import structural_similarity

    rec, tgt = grayscale(reconstructions), grayscale(targets)
    return np.array([structural_similarity(t, r, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, data_range=1.0)
                     for r, t in zip(rec, tgt)])


def psnr(reconstructions, targets):
    """Peak signal-to-noise ratio in dB for images in [0, 1]; shape (n,) (inf when identical)."""
    a, b = _pair(reconstructions, targets, "psnr")
    mse = ((a - b) ** 2).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse)


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


def flow_epe(reconstructions, targets, runs, frames):
    """End-point error between Farneback optical flow of ground-truth and reconstructed frame pairs.

    Pairs are consecutive frames (frame t, t+1) of the same run.

    Parameters
    ----------
    reconstructions, targets : ndarray, shape (n, 3, H, W) in [0, 1]
    runs, frames : ndarray of int, shape (n,)
        Run and frame number of each sample.

    Returns
    -------
    ndarray, shape (n_pairs,)
        Mean end-point error (pixels) of each pair.
    """
    import cv2

    def gray8(x):
        return (np.clip(grayscale(x), 0, 1) * 255 + 0.5).astype(np.uint8)

    rec, tgt = gray8(reconstructions), gray8(targets)
    runs, frames = np.asarray(runs), np.asarray(frames)
    errors = []
    for i in range(len(rec) - 1):
        if runs[i + 1] != runs[i] or frames[i + 1] != frames[i] + 1:
            continue
        args = (None, 0.5, 3, 15, 3, 5, 1.2, 0)
        f_gt = cv2.calcOpticalFlowFarneback(tgt[i], tgt[i + 1], *args)
        f_rec = cv2.calcOpticalFlowFarneback(rec[i], rec[i + 1], *args)
        errors.append(float(np.sqrt(((f_gt - f_rec) ** 2).sum(axis=-1)).mean()))
    return np.asarray(errors)
