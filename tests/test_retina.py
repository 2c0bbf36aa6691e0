import numpy as np
import pytest

from brain2pix_gluon.errors import DataError
from brain2pix_gluon.preprocessing.retina import (
    FisheyeWarp, _sampled_radii, cached_warp, fisheye_map, fisheye_warp, fisheye_warp_reference,
    radial_curve)


def test_radial_curve_fits_the_lattice_radii():
    from scipy import optimize

    size, ratio = 96, 10.0
    alpha, beta = radial_curve(size, ratio)
    assert alpha >= 0 and beta >= 0
    # The density solves S/2 - r[S//2 - 1] = 0 and the fit follows those radii closely.
    rf = optimize.brentq(lambda d: size / 2 - _sampled_radii(d, size, ratio)[size // 2 - 1], 0.01, 5)
    radii = _sampled_radii(rf, size, ratio)[: size // 2]
    assert radii[-1] == pytest.approx(size / 2, abs=1e-6)
    rho = np.arange(size // 2)
    fitted = alpha * rho ** 2 + beta * rho
    # a quadratic cannot follow the lattice exactly; it stays within 1.5 px of it
    assert np.max(np.abs(fitted - radii)) < 1.5
    # and it is the same optimum the authors' iterative bounded fit reaches
    (a_ref, b_ref), _ = optimize.curve_fit(lambda r, a, b: a * r ** 2 + b * r, rho, radii,
                                           p0=(1e-9, 0.4), bounds=(0.0, np.inf))
    assert alpha == pytest.approx(a_ref, rel=1e-5) and beta == pytest.approx(b_ref, rel=1e-5)
    # the fovea is magnified: near the centre a target pixel reads less than one source pixel
    assert beta < 1.0 and alpha > 0


def test_map_is_centred_and_radial():
    rows, cols = fisheye_map(96)
    c = 47.5
    # symmetric under a 180 degree rotation about the centre
    np.testing.assert_allclose(rows + rows[::-1, ::-1], 2 * c, atol=1e-9)
    np.testing.assert_allclose(cols + cols[::-1, ::-1], 2 * c, atol=1e-9)
    # corners read outside the image (they become 0)
    assert cols[0, 0] < 0 and rows[0, 0] < 0


@pytest.mark.parametrize("size", [32, 96])
def test_fast_warp_equals_reference(size, rng):
    frame = rng.random((size, size, 3))
    np.testing.assert_allclose(fisheye_warp(frame), fisheye_warp_reference(frame), atol=1e-5)


def test_constant_image_stays_constant_inside_and_zero_outside():
    out = fisheye_warp(np.ones((96, 96, 3)))
    assert np.allclose(out[30:66, 30:66], 1.0)
    assert np.all(out[0, 0] == 0.0)


def test_shapes_batches_and_nchw(rng):
    frames = rng.random((5, 32, 32, 3)).astype(np.float32)
    batch = fisheye_warp(frames)
    assert batch.shape == frames.shape and batch.dtype == np.float32
    np.testing.assert_allclose(batch[2], fisheye_warp(frames[2]), atol=1e-6)
    nchw = cached_warp(32).warp_nchw((frames * 255).astype(np.uint8), scale=1 / 255.0)
    expected = fisheye_warp((frames * 255).astype(np.uint8).astype(np.float32) / 255.0)
    np.testing.assert_allclose(nchw, expected.transpose(0, 3, 1, 2), atol=1e-6)
    assert cached_warp(32) is cached_warp(32)


def test_bad_shapes_are_rejected():
    with pytest.raises(DataError, match="square"):
        fisheye_warp(np.zeros((32, 48, 3)))
    with pytest.raises(DataError, match="dimensions"):
        fisheye_warp(np.zeros((32, 32)))
    with pytest.raises(DataError, match=r"spatial size \(32, 32\)"):
        FisheyeWarp(32)(np.zeros((64, 64, 3)))
