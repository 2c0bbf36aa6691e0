"""The simulated cortex's encoding model, checked against hand computations and physical facts."""

import numpy as np
import pytest

from brain2pix_gluon.config import SimulationConfig
from brain2pix_gluon.data.cortex import (REFERENCE_SCALES, VoxelModel, cone_channels,
                                         contrast_energy, drive_table, prf_weights)


def _uniform(rgb, size=16, t=1):
    return np.broadcast_to(np.asarray(rgb, np.float32), (t, size, size, 3)).copy()


def test_contrast_energy_of_a_grating_is_its_rms_amplitude():
    # a fine grating (4 px period) passes the 2-px surround almost untouched (gain 1 -
    # exp(-2 pi^2 sigma^2 f^2) = 0.9928), so its local RMS contrast is amplitude / sqrt(2)
    size, amplitude = 64, 0.2
    x = np.arange(size)
    lum = 0.5 + amplitude * np.sin(2 * np.pi * x / 4.0)[None, None, :].repeat(size, 1)
    energy = contrast_energy(lum.astype(np.float32))
    centre = energy[0, 16:48, 16:48]
    expected = amplitude * (1 - np.exp(-2 * np.pi ** 2 * 4.0 / 16)) / np.sqrt(2)
    assert centre.mean() == pytest.approx(expected, rel=0.02)
    assert contrast_energy(np.full((1, 32, 32), 0.7, np.float32)).max() < 1e-6


def _one_voxel(terms, exponent=0.5, size=32, polarity=(1.0, 1.0)):
    weights = prf_weights(np.array([0.0]), np.array([0.0]), np.array([0.1]), size)
    model = VoxelModel(weights, [0], [terms, terms, terms], [exponent] * 3,
                       np.random.default_rng(0))
    model.polarity[:] = polarity
    return model


def test_prf_weights_are_the_normalised_gaussian_by_hand():
    """Pixel (i, j) sits at y = (i + 0.5) / 32 - 0.5, x = (j + 0.5) / 32 - 0.5; the weights are
    the Gaussian at the centre over its sum (its far tail, below float32's smallest normal
    number, set to 0)."""
    x0, y0, sigma, size = 0.25, -0.25, 0.05, 32
    w = prf_weights(np.array([x0]), np.array([y0]), np.array([sigma]), size).reshape(size, size)
    grid = (np.arange(size) + 0.5) / size - 0.5
    g = np.exp(-((grid[None, :] - x0) ** 2 + (grid[:, None] - y0) ** 2) / (2 * sigma ** 2))
    np.testing.assert_allclose(w, g / g.sum(), rtol=1e-5, atol=np.finfo(np.float32).tiny)
    # x = +0.25 is column 23.5, y = -0.25 row 7.5: the peak is there
    assert np.unravel_index(np.argmax(w), w.shape) in {(7, 23), (7, 24), (8, 23), (8, 24)}


def test_contrast_summation_is_compressive():
    """Doubling the contrast inside the pRF multiplies the contrast drive by 2 ** n (CSS)."""
    size, n = 32, 0.4
    model = _one_voxel([1.0, 0.0, 0.0, 0.0], exponent=n, size=size)
    x = np.arange(size)

    def grating(amplitude):
        g = 0.5 + amplitude * np.sin(2 * np.pi * x / 4.0)
        return np.repeat(np.repeat(g[None, None, :, None], size, 1), 3, 3).astype(np.float32)

    low, high = model.drive(grating(0.1))[0, 0], model.drive(grating(0.2))[0, 0]
    signals = model.signals(grating(0.1))["contrast"][0, 0]
    assert low == pytest.approx(signals ** n, rel=1e-5)
    # luminance ** 2.2 makes the cone-space contrast grow a little faster than the amplitude
    lum_ratio = (model.signals(grating(0.2))["contrast"][0, 0] / signals)
    assert high / low == pytest.approx(lum_ratio ** n, rel=1e-5)
    assert 1.0 < high / low < 2.0 ** 0.5   # sub-additive: far below doubling


def test_colour_terms_magnitude_plus_signed_hue_bias_and_linear_luminance():
    """A colour drive = |opponent contrast| + hue_bias x polarity x opponent contrast (each over
    its reference scale), computed by hand; luminance enters linearly."""
    red = _uniform((0.8, 0.2, 0.2), 32)
    plus = _one_voxel([0.0, 1.0, 0.0, 0.0], polarity=(1.0, 1.0))
    minus = _one_voxel([0.0, 1.0, 0.0, 0.0], polarity=(-1.0, 1.0))
    _, rg, _ = cone_channels(red)
    scaled = rg[0, 0, 0] / REFERENCE_SCALES["red_green"]
    assert rg[0, 0, 0] > 0
    assert plus.drive(red)[0, 0] == pytest.approx(abs(scaled) * 1.25, rel=1e-4)
    assert minus.drive(red)[0, 0] == pytest.approx(abs(scaled) * 0.75, rel=1e-4)
    # a green field has the opposite L-M sign: the polarities swap their responses
    green = _uniform((0.2, 0.8, 0.2), 32)
    g = cone_channels(green)[1][0, 0, 0] / REFERENCE_SCALES["red_green"]
    assert g < 0
    assert minus.drive(green)[0, 0] == pytest.approx(abs(g) * 1.25, rel=1e-4)
    lum_only = _one_voxel([0.0, 0.0, 0.0, 1.0])
    dim, bright = _uniform((0.3,) * 3, 32), _uniform((0.6,) * 3, 32)
    expected = (cone_channels(bright)[0] - cone_channels(dim)[0])[0, 0, 0] / REFERENCE_SCALES[
        "luminance"]
    assert lum_only.drive(bright)[0, 0] - lum_only.drive(dim)[0, 0] == pytest.approx(expected,
                                                                                   rel=1e-4)


def test_drive_table_rows_are_rois_and_columns_the_drive_terms():
    sim = SimulationConfig(drive_contrast=(1.0, 2.0, 3.0), drive_red_green=(4.0, 5.0, 6.0),
                           drive_blue_yellow=(7.0, 8.0, 9.0), drive_luminance=(10.0, 11.0, 12.0))
    np.testing.assert_array_equal(drive_table(sim), [[1, 4, 7, 10], [2, 5, 8, 11],
                                                     [3, 6, 9, 12]])
