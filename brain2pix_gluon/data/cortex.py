"""What a simulated early-visual-cortex voxel responds to: the simulator's encoding model.

A voxel of V1, V2 or V3 sees the fisheye-warped frame through an isotropic Gaussian pRF and mixes
four signals, each summed over its pRF (docs/method.md, "The simulated cortex"):

* **local contrast energy**, compressed: ``(pRF . E / E_ref) ** n`` with ``E`` the RMS of the
  band-pass luminance around each pixel and ``n < 1`` (compressive spatial summation, Kay et al.
  2013), stronger compression in V3 than in V1;
* **red-green opponency** ``L - M`` and **blue-yellow opponency** ``S - (L + M) / 2``, both as cone
  contrasts (divided by ``L + M``), each with a voxel's own polarity: a voxel samples an unequal
  mix of the two opponent cell types, which is what lets hue be decoded from V1 voxel patterns
  (Brouwer & Heeger 2009); V1 weighs L - M more than S (Engel et al. 1997);
* **luminance**, weakly: a uniform field drives early visual cortex little compared with contrast.

Each pRF-summed signal is divided by a reference scale (its standard deviation over the
simulator's stimuli, measured once on the warped frames) so that the mixture weights compare
like with like. V2 and V3 have larger pRFs (``simulation.rf_sigma``), more compression and less
weight on luminance and colour: more invariance, as in cortex.

Cone responses, the opponent contrasts and the contrast energy are those of
:mod:`brain2pix_gluon.preprocessing.light` (:func:`~brain2pix_gluon.preprocessing.light.cone_channels`:
linearised sRGB through the Hunt-Pointer-Estevez LMS transform;
:func:`~brain2pix_gluon.preprocessing.light.contrast_energy`), the same that the pRF fit's image
features (``prf.drive=features``) use.
"""

import numpy as np

from ..io.names import ROIS
from ..preprocessing.light import cone_channels, contrast_energy

__all__ = ["ROIS", "DRIVE_TERMS", "REFERENCE_SCALES", "cone_channels", "contrast_energy",
           "prf_weights", "drive_table", "VoxelModel"]

# the four signals a voxel mixes, in the order of simulation.drive_weights' columns
DRIVE_TERMS = ("contrast", "red_green", "blue_yellow", "luminance")

# scale of each signal: the per-pixel standard deviation over the simulator's warped stimuli,
# measured once (contrast energy 0.059, L-M contrast 0.072, S contrast 0.25, L+M 0.22), so that a
# weight of 1 means about "one typical excursion"; the two opponent magnitudes reuse the scale of
# their signed signal (not measured separately)
REFERENCE_SCALES = {"contrast": 0.05, "red_green": 0.07, "blue_yellow": 0.25,
                    "luminance": 0.22, "red_green_energy": 0.07, "blue_yellow_energy": 0.25}


def prf_weights(x, y, sigma, size):
    """Gaussian pRF weights over the pixels of a ``size`` x ``size`` frame.

    Pixel (i, j) sits at y = (i + 0.5) / size - 0.5, x = (j + 0.5) / size - 0.5.

    Parameters
    ----------
    x, y, sigma : ndarray, shape (n_voxels,)
        Centres and sizes in [-0.5, 0.5) image units (x right, y down).
    size : int

    Returns
    -------
    ndarray, shape (n_voxels, size * size), float32; rows sum to 1
    """
    grid = (np.arange(size) + 0.5) / size - 0.5
    sig2 = 2 * np.asarray(sigma)[:, None] ** 2
    w = (np.exp(-(grid[None, :] - np.asarray(y)[:, None]) ** 2 / sig2)[:, :, None]
         * np.exp(-(grid[None, :] - np.asarray(x)[:, None]) ** 2 / sig2)[:, None, :])
    w = w.reshape(len(x), size * size)
    w = (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
    # weights far out in the Gaussian's tail become float32 subnormals, which make every product
    # with them about ten times slower; as zeros they leave every sum's float32 value unchanged
    w[w < np.finfo(np.float32).tiny] = 0.0
    return w


def drive_table(sim):
    """Per ROI, the weights of :data:`DRIVE_TERMS` from a ``SimulationConfig``.

    Returns
    -------
    ndarray, shape (3, 4): rows V1, V2, V3; columns contrast, red-green, blue-yellow, luminance
    """
    return np.array([sim.drive_contrast, sim.drive_red_green, sim.drive_blue_yellow,
                     sim.drive_luminance], np.float32).T


class VoxelModel:
    """Neural drive of every visual voxel from the frames it was shown.

    Parameters
    ----------
    weights : ndarray, shape (n_voxels, size * size)
        pRF weights (:func:`prf_weights`), voxels in mask order.
    roi_index : ndarray of int, shape (n_voxels,)
        0, 1, 2 for V1, V2, V3.
    drive_weights : sequence of 3 sequences of 4 floats
        Per ROI, the weights of :data:`DRIVE_TERMS`.
    exponents : sequence of 3 floats
        Per ROI, the compressive exponent of the contrast term (0 < n <= 1).
    rng : numpy.random.Generator
        Draws each voxel's colour polarities.
    """

    def __init__(self, weights, roi_index, drive_weights, exponents, rng, hue_bias=0.25):
        self.weights = weights
        self.roi_index = np.asarray(roi_index)
        n = len(self.roi_index)
        table = np.asarray(drive_weights, np.float32)          # (3 ROIs, 4 terms)
        self.mix = table[self.roi_index]                        # (n_voxels, 4)
        self.exponent = np.asarray(exponents, np.float32)[self.roi_index]
        self.hue_bias = np.float32(hue_bias)
        # +1 / -1: which opponent cell type dominates the voxel's population
        self.polarity = rng.choice(np.array([-1.0, 1.0], np.float32), size=(n, 2))

    def signals(self, frames):
        """The four pRF-summed signals, each over its reference scale.

        Parameters
        ----------
        frames : ndarray, shape (T, size, size, 3)
            Warped sRGB frames in [0, 1].

        Returns
        -------
        dict of str -> ndarray, shape (T, n_voxels)
        """
        lum, red_green, blue_yellow = cone_channels(frames)
        energy = contrast_energy(lum)
        flat = {"contrast": energy, "red_green": red_green, "blue_yellow": blue_yellow,
                "luminance": lum}
        flat["red_green_energy"] = np.abs(red_green)
        flat["blue_yellow_energy"] = np.abs(blue_yellow)
        t = len(frames)
        return {k: (v.reshape(t, -1) @ self.weights.T) / REFERENCE_SCALES[k]
                for k, v in flat.items()}

    def drive(self, frames):
        """Neural drive, shape (T, n_voxels), float32 (before the HRF; not yet centred).

        Each opponent signal enters twice: as its magnitude (the population's response to
        colour modulation of either sign, which dominates the BOLD response) and, with
        ``hue_bias`` of that weight, signed by the voxel's polarity (its hue preference)."""
        s = self.signals(frames)
        contrast = np.power(np.maximum(s["contrast"], 0.0), self.exponent)
        colour = 0.0
        for k, term in ((1, "red_green"), (2, "blue_yellow")):
            colour = colour + self.mix[:, k] * (
                s[term + "_energy"] + self.hue_bias * self.polarity[:, k - 1] * s[term])
        out = self.mix[:, 0] * contrast + colour + self.mix[:, 3] * s["luminance"]
        return out.astype(np.float32)
