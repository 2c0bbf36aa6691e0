"""What a viewer recognises (the set, where the characters are), the tests beside it (McNemar,
the paper's binomial over frames x metrics), and the image statistics of the findings: each
against a hand computation or a physical fact."""

import numpy as np
import pytest
from scipy import ndimage, stats

from brain2pix_gluon.evaluation.metrics import fine_scale_share, fisheye_valid_mask, repetition
from brain2pix_gluon.evaluation.recognition import (SetClassifier, compare_recognition,
                                                    layout_features, localise,
                                                    recognition_per_frame, recognition_summary)
from brain2pix_gluon.evaluation.stats import binomial_over_metrics, mcnemar

SIZE = 32
MASK = fisheye_valid_mask(SIZE, 10.0)


def test_layout_features_are_cell_means_of_the_valid_field():
    frames = np.random.default_rng(0).random((2, 3, SIZE, SIZE)).astype(np.float32)
    feats = layout_features(frames, np.ones((SIZE, SIZE), bool), grid=4)
    # without a mask: 16 cells of 8 x 8 pixels, 3 colours each
    by_hand = frames.reshape(2, 3, 4, 8, 4, 8).mean(axis=(3, 5)).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(feats, by_hand.reshape(2, -1), rtol=1e-6)
    # with the fisheye mask the cells mostly outside the field (the corners) are left out, and
    # the others average their pixels inside it
    cells = MASK.reshape(8, 4, 8, 4).mean(axis=(1, 3))
    kept = layout_features(frames, MASK, grid=8)
    assert kept.shape[1] == 3 * (cells >= 0.5).sum() < 3 * 64
    r, c = np.argwhere((cells >= 0.5) & (cells < 1))[0]
    inside = MASK[4 * r:4 * r + 4, 4 * c:4 * c + 4]
    k = int(np.flatnonzero((cells >= 0.5).ravel() == 1).tolist().index(8 * r + c))
    assert kept[0, 3 * k] == pytest.approx(frames[0, 0, 4 * r:4 * r + 4, 4 * c:4 * c + 4][inside]
                                           .mean(), rel=1e-6)


def _sets(rng, n_per_set=20):
    """Three 'sets': a vertical, a horizontal and a diagonal colour ramp, with texture."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    ramps = [np.stack([xx, 1 - xx, 0.5 + 0 * xx]), np.stack([0.2 + 0 * yy, yy, 1 - yy]),
             np.stack([(xx + yy) / 2, 0.5 + 0 * xx, 1 - (xx + yy) / 2])]
    frames, labels = [], []
    for s, ramp in enumerate(ramps):
        for _ in range(n_per_set):
            frames.append(np.clip(ramp + rng.normal(0, 0.15, ramp.shape), 0, 1))
            labels.append(s)
    return np.array(frames, np.float32) * MASK, np.array(labels)


def test_set_classifier_names_the_set_of_a_blurry_reconstruction():
    rng = np.random.default_rng(1)
    train, train_sets = _sets(rng)
    test, test_sets = _sets(rng, 5)
    clf = SetClassifier(train, train_sets, 4, MASK, grid=6)     # a fourth set never seen
    blurry = ndimage.gaussian_filter(test, (0, 0, 3, 3)) * MASK
    assert np.array_equal(clf.predict(blurry), test_sets)
    # the per-set mean frames (for localisation) are the training frames' means
    np.testing.assert_allclose(clf.mean_frames[1], train[train_sets == 1].mean(0), rtol=1e-5)
    assert np.isnan(clf.centroids[3]).all() and not np.any(clf.predict(blurry) == 3)


def test_localise_finds_a_blob_and_scores_it_by_hand():
    background = np.full((3, SIZE, SIZE), 0.5, np.float32)
    frames = np.stack([background.copy() for _ in range(3)])
    frames[0, :, 8:12, 20:24] = 0.0          # a dark blob centred at x 21.5, y 9.5
    frames[1, :, 18:22, 10:14] = 1.0         # a bright one at x 11.5, y 19.5
    peaks = localise(frames, np.stack([background] * 3), MASK, smooth_px=1.0)
    np.testing.assert_allclose(peaks[0], (21.5, 9.5), atol=0.6)
    np.testing.assert_allclose(peaks[1], (11.5, 19.5), atol=0.6)

    clf = SetClassifier(np.stack([background] * 4), np.zeros(4, int), 1, MASK, grid=4)
    chars = np.full((3, 2, 4), np.nan, np.float32)
    chars[..., 2:] = 0
    chars[0, 0] = (21.5, 9.5, 16.0, 1.0)      # frame 0: the character where the blob is
    chars[1, 1] = (25.0, 19.5, 16.0, 1.0)     # frame 1: 13.5 px right of the blob
    chars[1, 0] = (11.5, 19.5, 16.0, 0.3)     # ... the one at the blob is mostly out of view
    out = recognition_per_frame(frames, np.zeros(3, int), chars, clf, smooth_px=1.0)
    radius = np.sqrt(16.0 / np.pi)            # 2.26 px: a disc of the character's area
    assert out["location_error"][0] == pytest.approx(0.0, abs=0.8)
    assert out["location_error"][1] == pytest.approx(13.5, abs=0.8)
    assert np.isnan(out["location_error"][2]) and np.isnan(out["location_hit"][2])
    assert out["location_hit"][0] == 1.0 and out["location_hit"][1] == 0.0 and radius < 13.5
    assert np.array_equal(out["set_correct"], [1.0, 1.0, 1.0])
    summary = recognition_summary(out)
    assert summary["n_located"] == 2 and summary["location_hit_rate"] == 0.5


def test_mcnemar_counts_the_discordant_frames():
    a = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 1], float)
    b = np.array([0, 0, 0, 0, 0, 1, 0, 1, 1, 1], float)
    t = mcnemar(a, b)
    assert (t["model_only"], t["other_only"]) == (5, 1)
    assert t["p"] == pytest.approx(stats.binom.sf(4, 6, 0.5))     # P(X >= 5), X ~ B(6, 1/2)
    assert mcnemar(a, a)["p"] == 1.0


def test_binomial_over_metrics_by_hand():
    model = {"m_r": np.array([0.9, 0.8, 0.1, np.nan]), "m_dist": np.array([1.0, 2.0, 3.0, 4.0])}
    other = {"m_r": np.array([0.5, 0.8, 0.2, 0.3]), "m_dist": np.array([2.0, 1.0, 4.0, 4.0])}
    result = binomial_over_metrics(model, other, {"m_r": True, "m_dist": False})
    # r: a win, a tie, a loss (NaN dropped); distance: a win, a loss, a win, a tie -> 3 of 7
    assert (result["successes"], result["n"]) == (3, 7)
    assert result["p"] == pytest.approx(stats.binom.sf(2, 7, 0.5))
    two = binomial_over_metrics(model, other, {"m_r": True, "m_dist": False}, two_sided=True)
    assert two["p"] == pytest.approx(stats.binomtest(3, 7, 0.5).pvalue)


def test_compare_recognition_uses_frames_both_can_be_scored():
    a = {"set_correct": np.ones(4), "location_hit": np.array([1, 0, np.nan, 1.0]),
         "location_error": np.array([1.0, 9.0, np.nan, 2.0])}
    b = {"set_correct": np.zeros(4), "location_hit": np.array([0, 0, np.nan, 0.0]),
         "location_error": np.array([5.0, 8.0, np.nan, 7.0])}
    out = compare_recognition(a, b)
    assert out["set"]["model_only"] == 4 and out["hit"]["model_only"] == 2
    assert out["error"]["n"] == 3 and out["error"]["wins"] == 2
    assert out["error"]["difference"] == pytest.approx(np.mean([1 - 5, 9 - 8, 2 - 7]))


def test_noise_has_most_of_its_variance_at_fine_scales_and_a_smooth_frame_little():
    rng = np.random.default_rng(2)
    noise = rng.random((4, 3, SIZE, SIZE))
    smooth = ndimage.gaussian_filter(rng.random((4, 3, SIZE, SIZE)), (0, 0, 4, 4))
    mask = np.ones((SIZE, SIZE), bool)
    assert fine_scale_share(noise, mask).min() > 0.6
    assert fine_scale_share(smooth, mask).max() < 0.1
    assert np.isnan(fine_scale_share(np.full((1, 3, SIZE, SIZE), 0.3), mask)[0])


def test_repetition_is_one_for_identical_outputs_and_low_for_independent_ones():
    rng = np.random.default_rng(3)
    same = np.repeat(rng.random((1, 3, SIZE, SIZE)), 5, axis=0) + rng.normal(0, 1e-3,
                                                                             (5, 3, SIZE, SIZE))
    assert repetition(same, MASK).min() > 0.99
    assert abs(repetition(rng.random((5, 3, SIZE, SIZE)), MASK)).max() < 0.1
    # by hand for frame 0 of three
    images = rng.random((3, 3, SIZE, SIZE))
    px = images[:, :, MASK].reshape(3, -1)
    assert repetition(images, MASK)[0] == pytest.approx(
        np.corrcoef(px[0], (px[1] + px[2]) / 2)[0, 1])
