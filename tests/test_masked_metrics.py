"""Pixel metrics inside the fisheye frame's valid field, and the mean-training-frame reference."""

import numpy as np
import pytest

from brain2pix_gluon.errors import DataError
from brain2pix_gluon.evaluation.metrics import (fisheye_valid_mask, flow_epe, pixel_metrics,
                                                mean_training_frame, pixcorr, psnr, ssim_gray)
from brain2pix_gluon.preprocessing.retina import FisheyeWarp


@pytest.mark.parametrize("size", [32, 96])
def test_valid_mask_is_where_the_warp_of_a_white_frame_stays_white(size):
    # a physical fact of bilinear sampling with black outside: a white frame stays exactly white
    # where every neighbour of the source sample is inside the frame, and is dimmed elsewhere
    white = FisheyeWarp(size, 10.0)(np.ones((size, size, 3), np.float32))[..., 0]
    mask = fisheye_valid_mask(size, 10.0)
    np.testing.assert_array_equal(mask, white > 1 - 1e-5)
    assert not mask[0, 0] and mask[size // 2, size // 2]
    assert fisheye_valid_mask(size, 10.0, fisheye=False).all()


def _frames(t_inside, r_inside):
    """4x4 frames (3 equal channels): the centre 2x2 given, the rest black in both."""
    t, r = np.zeros((1, 3, 4, 4)), np.zeros((1, 3, 4, 4))
    t[..., 1:3, 1:3] = np.reshape(t_inside, (2, 2))
    r[..., 1:3, 1:3] = np.reshape(r_inside, (2, 2))
    return r, t


def test_black_corners_turn_an_anticorrelated_frame_into_a_correlated_one():
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    rec, tgt = _frames([4, 3, 2, 1], [1, 2, 3, 4])
    # by hand over 16 pixels: means 10/16; sum(t r) = 20, sum(t^2) = sum(r^2) = 30;
    # cov = 20 - 16 (10/16)^2 = 13.75, var = 30 - 6.25 = 23.75 -> r = 13.75 / 23.75
    assert pixcorr(rec, tgt)[0] == pytest.approx(13.75 / 23.75)
    assert pixcorr(rec, tgt, mask)[0] == pytest.approx(-1.0)
    # PSNR: squared errors 9, 1, 1, 9 over 4 inside pixels (mean 5) or 16 pixels (mean 1.25)
    assert psnr(rec, tgt, mask)[0] == pytest.approx(10 * np.log10(1 / 5.0))
    assert psnr(rec, tgt)[0] == pytest.approx(10 * np.log10(1 / 1.25))


def test_corners_that_differ_only_outside_the_field_do_not_count(rng):
    size = 32
    mask = fisheye_valid_mask(size, 10.0)
    tgt = rng.random((3, 3, size, size)) * mask
    rec = tgt.copy()
    rec[:, :, ~mask] = rng.random((3, 3, (~mask).sum()))
    assert np.allclose(pixcorr(rec, tgt, mask), 1.0)
    assert np.all(pixcorr(rec, tgt) < 0.95)
    assert np.all(np.isinf(psnr(rec, tgt, mask))) and np.all(np.isfinite(psnr(rec, tgt)))


def test_masked_ssim_averages_the_local_map_over_the_mask(rng):
    from scipy import ndimage
    from skimage.metrics import structural_similarity

    tgt = ndimage.gaussian_filter(rng.random((2, 3, 40, 40)), (0, 0, 0, 1.5, 1.5)[1:])
    rec = tgt.copy()
    rec[:, :, :12, :] = rng.random((2, 3, 12, 40))         # rows 0..11 differ
    centre = np.zeros((40, 40), bool)
    centre[20:30, 10:30] = True                             # further than 5 px from any change
    assert np.allclose(ssim_gray(rec, tgt, centre), 1.0)
    assert np.all(ssim_gray(rec, tgt) < 0.95)
    # slow reference: skimage's local map averaged by hand over the mask (5-px border dropped)
    gray = lambda x: 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]  # noqa: E731
    band = np.zeros((40, 40), bool)
    band[8:16, :] = True
    _, local = structural_similarity(gray(tgt)[1], gray(rec)[1], gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=1.0, full=True)
    expected = np.mean([local[i, j] for i in range(40) for j in range(40)
                        if band[i, j] and 5 <= i < 35 and 5 <= j < 35])
    assert ssim_gray(rec, tgt, band)[1] == pytest.approx(expected)
    with pytest.raises(DataError, match="mask expected a boolean array of shape"):
        ssim_gray(rec, tgt, band[:10])
    with pytest.raises(DataError, match="selects no pixel"):
        pixcorr(rec, tgt, np.zeros((40, 40), bool))


def test_flow_error_inside_the_mask(rng):
    from scipy import ndimage

    base = ndimage.gaussian_filter(rng.random((1, 3, 40, 40)), (0, 0, 2, 2))
    moving = np.concatenate([np.roll(base, k, axis=3) for k in range(3)])
    runs, frames = np.zeros(3, int), np.arange(3)
    full = np.ones((40, 40), bool)
    np.testing.assert_allclose(flow_epe(moving[::-1], moving, runs, frames, full),
                               flow_epe(moving[::-1], moving, runs, frames))
    # right: the reconstruction stands still while the truth moves; left: it moves correctly
    rec = moving.copy()
    rec[..., 24:] = moving[:1, ..., 24:]
    left = np.zeros((40, 40), bool)
    left[:, :14] = True
    right = np.zeros((40, 40), bool)
    right[:, 28:] = True
    assert np.all(flow_epe(rec, moving, runs, frames, left)
                  < 0.5 * flow_epe(rec, moving, runs, frames, right))


def test_mean_training_frame_and_its_metrics(rng):
    train = [(rng.random((15, 16, 16)), rng.random((3, 16, 16)).astype(np.float32))
             for _ in range(7)]
    mean = mean_training_frame(train, batch_size=3)
    np.testing.assert_allclose(mean, np.mean([t for _, t in train], axis=0), rtol=1e-6)
    targets = rng.random((4, 3, 16, 16))
    mask = np.zeros((16, 16), bool)
    mask[4:12, 3:13] = True
    out = pixel_metrics(np.broadcast_to(mean, targets.shape), targets, mask)
    for i in range(4):
        assert out["pixcorr"][i] == pytest.approx(np.corrcoef(mean.ravel(), targets[i].ravel())[0, 1])
        assert out["pixcorr_disc"][i] == pytest.approx(
            np.corrcoef(mean[:, mask].ravel(), targets[i][:, mask].ravel())[0, 1])
        mse = np.mean((mean[:, mask] - targets[i][:, mask]) ** 2)
        assert out["psnr_disc"][i] == pytest.approx(10 * np.log10(1.0 / mse), rel=1e-6)
    assert set(out) == {"pixcorr", "ssim", "psnr", "pixcorr_disc", "ssim_disc", "psnr_disc"}
    with pytest.raises(DataError, match="pixel_metrics"):
        pixel_metrics(mean[None, :, :4], targets)
