"""The haemodynamic response: a canonical double-gamma HRF and causal convolution with it.

Used by the pRF fit (:mod:`brain2pix_gluon.preprocessing.prf`) and by the simulator's scanner
model (:mod:`brain2pix_gluon.data.simulation`), so both assume the same response.
"""

import numpy as np

__all__ = ["double_gamma_hrf", "hrf_convolve"]


def double_gamma_hrf(tr, duration=32.0, peak=6.0, undershoot=16.0, ratio=1.0 / 6.0):
    """Canonical double-gamma HRF sampled every ``tr`` seconds, normalised to unit sum.

    Parameters
    ----------
    tr : float
        Seconds per sample (``data.tr``).
    duration : float
        Seconds covered.
    peak, undershoot : float
        Shapes (seconds to the mode + 1) of the response and of the undershoot gamma densities.
    ratio : float
        Size of the undershoot relative to the response.

    Returns
    -------
    ndarray, shape (ceil(duration / tr),)
    """
    from scipy.stats import gamma

    times = np.arange(0.0, duration, tr)
    hrf = gamma.pdf(times, peak) - ratio * gamma.pdf(times, undershoot)
    return hrf / hrf.sum()


def hrf_convolve(drive, hrf):
    """Causal convolution of a time series (time on axis 0) with an HRF, same length.

    Parameters
    ----------
    drive : ndarray, shape (n_volumes, ...)
    hrf : ndarray, shape (n_taps,)

    Returns
    -------
    ndarray, shape (n_volumes, ...), float32
    """
    from scipy.signal import fftconvolve

    arr = np.asarray(drive, dtype=np.float32)
    kernel = np.asarray(hrf, dtype=np.float32).reshape((-1,) + (1,) * (arr.ndim - 1))
    return fftconvolve(arr, kernel, axes=0)[: arr.shape[0]].astype(np.float32)
