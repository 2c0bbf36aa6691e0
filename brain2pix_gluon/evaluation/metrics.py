"""Per-frame metrics: feature correlation and distance, and the image/video metrics of the field.

The pixel metrics (PixCorr, SSIM, PSNR, optical-flow error) take an optional ``mask`` of the
pixels to score. The target frames are fisheye-warped (paper section 2.2): output pixels whose
source sample lies outside the frame are black in every frame, so over the whole frame any
output that is black in those corners gets a free share of PixCorr and SSIM.
:func:`fisheye_valid_mask` gives the pixels the warp actually fills, and the evaluation reports
every pixel metric twice, over the whole frame (``pixcorr``) and inside that region
(``pixcorr_disc``).
"""

import numpy as np

from ..errors import DataError
from ..preprocessing.retina import fisheye_valid_mask
from ..similarity import (check_mask, row_pairs, euclidean_rows, grayscale, masked_pixels,
                          pearson_rows, pixcorr, two_way_identification, zscore_rows)

_masked = masked_pixels

__all__ = ["pearson_rows", "euclidean_rows", "pixcorr", "ssim_gray", "psnr", "grayscale",
           "two_way_identification", "flow_epe", "zscore_rows", "fisheye_valid_mask",
           "mean_training_frame", "pixel_metrics", "FIELD_METRICS", "masked_pixels"]


def ssim_gray(reconstructions, targets, mask=None):
    """SSIM on grayscale frames, Gaussian weights (sigma 1.5), data range 1; shape (n,).

    Without a mask this is scikit-image's mean SSIM (the local SSIM map averaged away from a
    border of the window's radius). With a mask, the same local map is averaged over the masked
    pixels that are not in that border; windows of pixels near the mask's edge still see pixels
    outside it.

    Parameters
    ----------
    reconstructions, targets : ndarray, shape (n, 3, H, W)
    mask : ndarray of bool, shape (H, W), optional
    """
    from skimage.metrics import structural_similarity

    mask = check_mask(mask, np.shape(reconstructions), "ssim_gray")
    rec, tgt = grayscale(reconstructions), grayscale(targets)
    out = np.empty(len(rec))
    for k, (r, t) in enumerate(zip(rec, tgt)):
        mean, local = structural_similarity(t, r, gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False, data_range=1.0,
                                            full=True)
        if mask is None:
            out[k] = mean
            continue
        pad = int(3.5 * 1.5 + 0.5)          # skimage's window radius for sigma 1.5
        inner = np.zeros(mask.shape, bool)
        inner[pad:mask.shape[0] - pad, pad:mask.shape[1] - pad] = True
        keep = mask & inner
        if not keep.any():
            raise DataError(f"ssim_gray: the mask has no pixel further than {pad} pixels from "
                            f"the frame's border")
        out[k] = local[keep].mean(dtype=np.float64)
    return out


def psnr(reconstructions, targets, mask=None):
    """Peak signal-to-noise ratio in dB for images in [0, 1]; shape (n,) (inf when identical).

    ``mask`` (bool, shape (H, W)): the mean squared error is taken over these pixels only.
    """
    mask = check_mask(mask, np.shape(reconstructions), "psnr")
    a, b = row_pairs(_masked(reconstructions, mask), _masked(targets, mask), "psnr")
    mse = ((a - b) ** 2).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse)


def flow_epe(reconstructions, targets, runs, frames, mask=None):
    """End-point error between Farneback optical flow of ground-truth and reconstructed frame pairs.

    Pairs are consecutive frames (frame t, t+1) of the same run. With ``mask`` (bool, shape
    (H, W)) the error is averaged over those pixels only.

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

    mask = check_mask(mask, np.shape(reconstructions), "flow_epe")
    rec, tgt = gray8(reconstructions), gray8(targets)
    runs, frames = np.asarray(runs), np.asarray(frames)
    errors = []
    for i in range(len(rec) - 1):
        if runs[i + 1] != runs[i] or frames[i + 1] != frames[i] + 1:
            continue
        args = (None, 0.5, 3, 15, 3, 5, 1.2, 0)
        f_gt = cv2.calcOpticalFlowFarneback(tgt[i], tgt[i + 1], *args)
        f_rec = cv2.calcOpticalFlowFarneback(rec[i], rec[i + 1], *args)
        error = np.sqrt(((f_gt - f_rec) ** 2).sum(axis=-1))
        errors.append(float(error.mean() if mask is None else error[mask].mean()))
    return np.asarray(errors)


def mean_training_frame(dataset, batch_size=64):
    """Mean target frame of a training set, the "always show the average frame" reference.

    Parameters
    ----------
    dataset : sequence of tuples
        E.g. :class:`~brain2pix_gluon.data.RFSImageDataset` of ``train.h5``; the last element of
        each item is the target frame (3, H, W), exactly as the model is trained against it.
    batch_size : int
        Frames summed at a time (the sum is accumulated in float64).

    Returns
    -------
    ndarray, shape (3, H, W), float32
    """
    n = len(dataset)
    if n == 0:
        raise DataError("mean_training_frame: the dataset holds no sample")
    total = None
    for start in range(0, n, batch_size):
        block = np.stack([np.asarray(dataset[i][-1], np.float64)
                          for i in range(start, min(start + batch_size, n))])
        total = block.sum(axis=0) if total is None else total + block.sum(axis=0)
    return (total / n).astype(np.float32)


def pixel_metrics(images, targets, mask=None):
    """PixCorr, SSIM and PSNR per frame, over the whole frame and inside a mask.

    Parameters
    ----------
    images, targets : ndarray, shape (n, 3, H, W)
        Reconstructions (or any images: a mean frame broadcast to every test frame) and their
        ground truth.
    mask : ndarray of bool, shape (H, W), optional
        The valid field (:func:`fisheye_valid_mask`); the whole frame when not given.

    Returns
    -------
    dict of str -> ndarray, shape (n,)
        ``pixcorr``, ``ssim``, ``psnr`` over the whole frame and ``pixcorr_disc``,
        ``ssim_disc``, ``psnr_disc`` inside the mask (:data:`FIELD_METRICS`).
    """
    images, targets = np.asarray(images), np.asarray(targets)
    if images.shape != targets.shape or images.ndim != 4:
        raise DataError(f"pixel_metrics: expected images and targets of one shape (n, 3, H, W), "
                        f"got {images.shape} and {targets.shape}")
    field = np.ones(targets.shape[-2:], bool) if mask is None else mask
    return {"pixcorr": pixcorr(images, targets), "ssim": ssim_gray(images, targets),
            "psnr": psnr(images, targets), "pixcorr_disc": pixcorr(images, targets, field),
            "ssim_disc": ssim_gray(images, targets, field),
            "psnr_disc": psnr(images, targets, field)}


# the keys of pixel_metrics(), in the order tables show them
FIELD_METRICS = ("pixcorr", "pixcorr_disc", "ssim", "ssim_disc", "psnr", "psnr_disc")

def fine_scale_share(images, mask, sigma=1.5):
    """How noise-like images are: the share of their variance at the finest scales.

    Per image, the grey levels inside ``mask`` minus a Gaussian blur of them (SD ``sigma``
    pixels), its variance over the image's variance. White noise puts most of its variance
    there; natural frames, whose power falls with spatial frequency, little.

    Parameters
    ----------
    images : ndarray, shape (n, 3, H, W)
    mask : ndarray of bool, shape (H, W)
    sigma : float

    Returns
    -------
    ndarray, shape (n,)
        In [0, 1] for real images; NaN for a flat image.
    """
    from scipy.ndimage import gaussian_filter

    gray = grayscale(np.asarray(images, np.float64))
    fine = gray - gaussian_filter(gray, (0, sigma, sigma))
    mask = np.asarray(mask, bool)
    total = gray[:, mask].var(axis=1)
    flat = total < 1e-12          # no variance to share (float rounding of a uniform image)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(flat, np.nan, fine[:, mask].var(axis=1) / np.where(flat, 1.0, total))


def repetition(images, mask):
    """How much a model repeats one pattern: each image's Pearson r with the mean of the others.

    Parameters
    ----------
    images : ndarray, shape (n, 3, H, W)
        A model's reconstructions of the test frames.
    mask : ndarray of bool, shape (H, W)

    Returns
    -------
    ndarray, shape (n,)
        Inside the mask, over the RGB values; near 1 when every output is the same picture.
    """
    pixels = masked_pixels(np.asarray(images, np.float64), mask)       # (n, d)
    n = len(pixels)
    if n < 2:
        raise DataError(f"repetition: expected at least 2 images, got {n}")
    others = (pixels.sum(axis=0, keepdims=True) - pixels) / (n - 1)
    return pearson_rows(pixels, others)
