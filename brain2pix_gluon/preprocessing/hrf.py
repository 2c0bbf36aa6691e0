"""The haemodynamic response: a canonical double-gamma HRF and causal convolution with it.

Used by the pRF fit (:mod:`brain2pix_gluon.preprocessing.prf`) and by the simulator's scanner
model (:mod:`brain2pix_gluon.data.simulation`), so both assume the same response.
"""

import numpy as np

__all__ = ["double_gamma_hrf", "hrf_convolve", "onset_response"]


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


def hrf_convolve(drive, hrf, block=64):
    """Causal convolution of a time series (time on axis 0) with an HRF, same length.

    The volumes are processed in blocks of ``block``, each one matrix product with a banded
    (Toeplitz) slice of the HRF: for the pRF fit's tens of thousands of candidate time courses
    this is several times faster than an FFT, and the cost stays proportional to the run length.

    Parameters
    ----------
    drive : ndarray, shape (n_volumes, ...)
    hrf : ndarray, shape (n_taps,)
    block : int
        Output volumes per matrix product.

    Returns
    -------
    ndarray, shape (n_volumes, ...), float32
    """
    arr = np.asarray(drive, dtype=np.float32)
    n = arr.shape[0]
    flat = arr.reshape(n, -1)
    kernel = np.asarray(hrf, dtype=np.float32)
    taps = len(kernel)
    out = np.empty_like(flat)
    for start in range(0, n, block):
        stop = min(start + block, n)
        first = max(0, start - taps + 1)
        # toeplitz[i, j] = hrf[(start + i) - (first + j)] where that lag is in 0 .. taps - 1
        lag = (np.arange(start, stop)[:, None] - np.arange(first, stop)[None, :])
        toeplitz = np.where((lag >= 0) & (lag < taps), kernel[np.clip(lag, 0, taps - 1)], 0.0)
        np.matmul(toeplitz.astype(np.float32), flat[first:stop], out=out[start:stop])
    return out.reshape(arr.shape)


def onset_response(hrf, n_volumes):
    """The response to a stimulus that switches on at volume 0 and stays on: the HRF's running
    sum, shape (n_volumes,).

    What a run's responses hold at its start depends on what was shown before it (a blank screen
    before a scan, the previous part of the movie where a long recording is cut into blocks); the
    pRF fit treats this onset response, like each run's mean, as a nuisance (see
    :func:`brain2pix_gluon.preprocessing.prf.run_nuisance`).
    """
    step = np.cumsum(np.asarray(hrf, dtype=np.float64))
    out = np.full(int(n_volumes), step[-1])
    out[:min(len(step), len(out))] = step[:len(out)]
    return out
