"""What the pixels of a frame are as light: cone excitations and cone-opponent contrasts.

One definition, used by the simulated cortex (:mod:`brain2pix_gluon.data.cortex`) and by the pRF
fit's image features (:mod:`brain2pix_gluon.preprocessing.prf`). Cone excitations come from
linearised sRGB (gamma 2.2) through the Hunt-Pointer-Estevez LMS transform of the sRGB primaries;
the two opponent signals are cone contrasts, divided by ``L + M``: red-green ``L - M`` and
blue-yellow ``S - (L + M) / 2`` (Engel, Zhang & Wandell 1997; Brouwer & Heeger 2009). The local
contrast energy is the RMS of the band-pass luminance around each pixel (the energy that the
compressive pRF model of Kay, Winawer, Mezer & Wandell 2013 sums).
"""

import numpy as np

__all__ = ["RGB_TO_LMS", "cone_channels", "contrast_energy"]

# linear sRGB -> L, M, S cone excitations (Hunt-Pointer-Estevez via the sRGB primaries)
RGB_TO_LMS = np.array([[0.31399, 0.63951, 0.04650],
                       [0.15537, 0.75789, 0.08670],
                       [0.01775, 0.10944, 0.87257]], np.float32)

_EPS = 0.05   # keeps cone contrasts finite in the black corners of the warped frame


def cone_channels(frames):
    """Luminance and the two opponent cone contrasts of RGB frames.

    Parameters
    ----------
    frames : ndarray, shape (T, H, W, 3)
        sRGB in [0, 1].

    Returns
    -------
    luminance : ndarray, shape (T, H, W), float32
        ``L + M`` of the linearised frames.
    red_green : ndarray, shape (T, H, W), float32
        ``(L - M) / (L + M)``.
    blue_yellow : ndarray, shape (T, H, W), float32
        ``(S - (L + M) / 2) / (L + M)``; about 0 for any grey.
    """
    linear = np.power(np.clip(frames, 0.0, 1.0, dtype=np.float32), 2.2)
    lms = linear @ RGB_TO_LMS.T
    lum = lms[..., 0] + lms[..., 1]
    red_green = (lms[..., 0] - lms[..., 1]) / (lum + _EPS)
    blue_yellow = (lms[..., 2] - 0.5 * lum) / (lum + _EPS)
    return lum, red_green, blue_yellow


def contrast_energy(luminance, surround_px=2.0, pool_px=1.5):
    """Local RMS contrast: band-pass luminance (minus a Gaussian surround), squared, pooled.

    Parameters
    ----------
    luminance : ndarray, shape (T, H, W)
    surround_px, pool_px : float
        Gaussian SDs (pixels) of the surround and of the pooling of the squared band.

    Returns
    -------
    ndarray, shape (T, H, W), non-negative
    """
    from scipy.ndimage import gaussian_filter

    band = luminance - gaussian_filter(luminance, (0, surround_px, surround_px))
    return np.sqrt(np.maximum(gaussian_filter(band * band, (0, pool_px, pool_px)), 0.0))
