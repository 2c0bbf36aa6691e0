"""The multi-feature pRF (``prf.drive=features``) checked against explicit least squares and
against voxels whose features, centres and weight signs the tests choose."""

import numpy as np
import pytest
from scipy import ndimage

from brain2pix_gluon.config import PRFConfig
from brain2pix_gluon.errors import ConfigError, DataError
from brain2pix_gluon.preprocessing.light import cone_channels, contrast_energy
from brain2pix_gluon.preprocessing.prf import (FEATURES, PRFGrid, feature_folds, fit_prf,
                                               model_drive)
from brain2pix_gluon.preprocessing.retina import fisheye_warp

from test_prf import TR, _gaussians, _hrf, _nuisance_out, _truth, _unit

S = 96


def _colour_frames(rng, n, size=S):
    """Smooth random textures with independent R, G and B: luminance, contrast and both
    cone-opponent contrasts all vary, and not in step."""
    noise = ndimage.gaussian_filter(rng.normal(size=(n, size, size, 3)), (0, 1.5, 1.5, 0))
    gain = rng.uniform(20, 70, size=(n, 1, 1, 1))            # contrast varies between frames
    level = rng.uniform(70, 180, size=(n, 1, 1, 3))          # and the mean colour
    return np.clip(level + gain * noise / noise.std(), 0, 255).astype(np.uint8)


def _features_of(frames):
    """The four image signals of warped frames, computed here from the light module:
    contrast energy, L - M contrast, S - (L + M) / 2 contrast, L + M; each (T, S, S)."""
    rgb = fisheye_warp(frames.astype(np.float32) / 255.0)
    lum, red_green, blue_yellow = cone_channels(rgb)
    return {"contrast": contrast_energy(lum), "red_green": red_green,
            "blue_yellow": blue_yellow, "luminance": lum}


def _bold(signals, hrf, rng, noise):
    """Responses (time, voxels) from neural drives (time, voxels): HRF, unit variance, noise."""
    drive = signals - signals.mean(axis=0)
    bold = np.stack([np.convolve(drive[:, v], hrf)[: len(drive)] for v in range(drive.shape[1])], 1)
    bold = bold / bold.std(axis=0)
    return (bold + noise * rng.normal(size=bold.shape)).astype(np.float32)


def _pooled(feature, weights):
    """pRF sums (time, voxels) of one feature map series; weights (voxels, S, S), normalised."""
    w = weights / weights.sum(axis=(1, 2), keepdims=True)
    pooled = np.einsum("tyx,vyx->tv", feature, w)
    return pooled / pooled.std()


def _simulate(rng, weights, mix, n_runs=3, n_t=150, noise=0.5):
    """Runs of colour frames and responses of voxels that mix the features of ``mix``
    (name -> per-voxel weight), all over the same pRF."""
    hrf = _hrf(TR)
    runs, signals = [], []
    for _ in range(n_runs):
        frames = _colour_frames(rng, n_t)
        feats = _features_of(frames)
        neural = 0.0
        for name, w in mix.items():
            value = np.abs(feats[name[:-4]]) if name.endswith("_abs") else feats[name]
            neural = neural + w * _pooled(value, weights)
        signals.append(_bold(neural, hrf, rng, noise))
        runs.append(frames)
    return runs, signals


def _centre_error_px(fit, xs, ys):
    return np.hypot(fit["x"] - xs, fit["y"] - ys) * S


def test_features_find_centres_that_luminance_alone_misses():
    # voxels that mix contrast energy, both colour-opponent magnitudes, signed L - M and a little
    # luminance over one pRF, as the package's simulated cortex does (written out here)
    rng = np.random.default_rng(11)
    xs, ys, sigmas = _truth(rng, 40)
    weights = _gaussians(xs, ys, sigmas)
    n = len(xs)
    mix = {"contrast": np.full(n, 1.0), "red_green_abs": np.full(n, 0.8),
           "blue_yellow_abs": np.full(n, 0.5), "red_green": rng.choice([-0.3, 0.3], n),
           "luminance": np.full(n, 0.3)}
    runs, signals = _simulate(rng, weights, mix, noise=0.3)
    config = PRFConfig(drive="features")
    fit = fit_prf([model_drive(f, len(f), config) for f in runs], signals, TR, config)
    lum_config = PRFConfig(drive="luminance")
    lum = fit_prf([model_drive(f, len(f), lum_config) for f in runs], signals, TR, lum_config)
    error, lum_error = _centre_error_px(fit, xs, ys), _centre_error_px(lum, xs, ys)
    assert np.median(error) <= 1.0
    assert np.median(lum_error) > 2 * np.median(error)
    # and the cross-validated R^2, which chooses the default drive, says so too
    assert np.median(fit["r2"]) > np.median(lum["r2"]) + 0.1
    assert fit["weights"].shape == (n, len(FEATURES))


def test_a_red_green_voxel_is_found_with_the_sign_of_its_weight():
    # voxels driven by signed L - M contrast alone, half of them red-on and half green-on
    rng = np.random.default_rng(12)
    xs, ys, sigmas = _truth(rng, 30)
    polarity = np.where(np.arange(30) % 2 == 0, 1.0, -1.0)
    runs, signals = _simulate(rng, _gaussians(xs, ys, sigmas), {"red_green": polarity},
                              noise=0.3)
    config = PRFConfig(drive="features")
    fit = fit_prf([model_drive(f, len(f), config) for f in runs], signals, TR, config)
    assert np.median(_centre_error_px(fit, xs, ys)) <= 1.0
    red_green = FEATURES.index("red_green")
    assert np.all(np.sign(fit["weights"][:, red_green]) == polarity)
    # its weight dominates once each feature's weight is scaled by the feature's own spread
    spread = np.array([np.std(model_drive(runs[0], 150, config)[:, c]) for c in
                       range(len(FEATURES))])
    share = np.abs(fit["weights"]) * spread
    assert np.all(share.argmax(axis=1) == red_green)


def test_signs_of_mixed_weights_are_recovered():
    # contrast energy up, luminance down or up, blue-yellow of either sign, per voxel
    rng = np.random.default_rng(13)
    xs, ys, sigmas = _truth(rng, 30)
    lum_sign = rng.choice([-1.0, 1.0], 30)
    by_sign = rng.choice([-1.0, 1.0], 30)
    mix = {"contrast": np.full(30, 1.0), "luminance": 0.8 * lum_sign,
           "blue_yellow": 0.8 * by_sign}
    runs, signals = _simulate(rng, _gaussians(xs, ys, sigmas), mix, noise=0.3)
    config = PRFConfig(drive="features")
    fit = fit_prf([model_drive(f, len(f), config) for f in runs], signals, TR, config)
    w = fit["weights"]
    assert np.all(w[:, FEATURES.index("contrast")] > 0)
    assert np.all(np.sign(w[:, FEATURES.index("luminance")]) == lum_sign)
    assert np.all(np.sign(w[:, FEATURES.index("blue_yellow")]) == by_sign)
    assert np.median(_centre_error_px(fit, xs, ys)) <= 1.0


def _explicit_feature_fit(drives, signals, grid, held=None):
    """Reference: every candidate's channel time courses written out (Gaussian sums, HRF,
    nuisance out), least squares per voxel, best explained variance wins."""
    size = grid.size
    coords = (np.arange(size) + 0.5) / size - 0.5
    cands = [(s, y, x) for s in grid.sigmas for y in grid.positions for x in grid.positions]
    runs = [r for r in range(len(drives)) if r != held]
    ys = [_unit(sig) for sig in signals]
    h = _hrf(TR)
    cache = {}

    def design(run, cand):
        if (run, cand) not in cache:
            s, y, x = cand
            g = np.exp(-((coords[:, None] - y) ** 2 + (coords[None, :] - x) ** 2) / (2 * s * s))
            m = np.einsum("tcyx,yx->tc", drives[run].astype(np.float64), g)
            m = np.stack([np.convolve(m[:, c], h)[: len(m)] for c in range(m.shape[1])], 1)
            cache[run, cand] = _nuisance_out(m, len(m))
        return cache[run, cand]

    best = []
    for v in range(signals[0].shape[1]):
        y = np.concatenate([ys[r][:, v] for r in runs])
        fits = []
        for cand in cands:
            x = np.concatenate([design(r, cand) for r in runs])
            beta = np.linalg.lstsq(x, y, rcond=None)[0]
            fits.append((y @ (x @ beta), beta))
        i = int(np.argmax([f[0] for f in fits]))
        best.append((cands[i], fits[i][1], np.sqrt(fits[i][0] / (y @ y))))
    return best, design


def test_grid_search_and_cross_validation_match_explicit_least_squares():
    rng = np.random.default_rng(14)
    size, n_runs, n_t, n_ch = 24, 3, 100, 3
    drives = [rng.normal(size=(n_t, n_ch, size, size)).astype(np.float32) for _ in range(n_runs)]
    signals = [rng.normal(size=(n_t, 4)).astype(np.float32) for _ in range(n_runs)]
    xs, ys = np.array([-0.3, 0.2, 0.1, 0.0]), np.array([0.25, -0.1, 0.3, 0.0])
    sig = np.full(4, 0.05)
    mix = np.array([[1.0, -0.5, 0.0], [0.0, 1.0, 0.0], [-0.7, 0.0, 0.7]])   # voxels 0-2
    w = _gaussians(xs, ys, sig, size)
    for r in range(n_runs):
        pooled = np.einsum("tcyx,vyx->tvc", drives[r], w)[:, :3]
        neural = np.einsum("tvc,vc->tv", pooled, mix)
        signals[r][:, :3] += 2 * np.stack([np.convolve(p, _hrf(TR))[:n_t] for p in neural.T], 1)
    config = PRFConfig(drive="features", grid_stride=3, n_sigma=3, sigma_min=0.03,
                       sigma_max=0.12, chunk_voxels=3)
    grid = PRFGrid(size, config)
    fit = fit_prf(drives, signals, TR, config)
    full, design = _explicit_feature_fit(drives, signals, grid)
    step = grid.stride / grid.size
    for v, ((s, y, x), beta, r) in enumerate(full):
        assert abs(fit["x"][v] - x) <= step / 2 + 1e-9 and abs(fit["y"][v] - y) <= step / 2 + 1e-9
        assert fit["r"][v] == pytest.approx(r, rel=1e-4)
        np.testing.assert_allclose(fit["weights"][v], beta, rtol=1e-3, atol=1e-4)
    # the voxels' own mixtures, signs included
    assert np.all(np.sign(fit["weights"][[0, 0, 1, 2, 2], [0, 1, 1, 0, 2]]) == [1, -1, 1, -1, 1])
    # leave-one-run-out R^2 (3 runs: every run is a fold), computed explicitly
    assert [list(f) for f in feature_folds(n_runs)] == [[0], [1], [2]]
    sse, sst = np.zeros(4), np.zeros(4)
    for held in range(n_runs):
        fold, _ = _explicit_feature_fit(drives, signals, grid, held=held)
        y_held = _unit(signals[held])
        for v, (cand, beta, _r) in enumerate(fold):
            sse[v] += np.sum((y_held[:, v] - design(held, cand) @ beta) ** 2)
            sst[v] += np.sum(y_held[:, v] ** 2)
    np.testing.assert_allclose(fit["r2"], 1 - sse / sst, rtol=1e-4, atol=1e-5)
    assert fit["r2"][:3].min() > fit["r2"][3]
    assert np.all(fit["exponent"] == 1.0)


def test_folds_group_consecutive_runs():
    folds = feature_folds(20)
    assert len(folds) == 5
    assert np.array_equal(np.concatenate(folds), np.arange(20))
    assert all(np.all(np.diff(f) == 1) for f in folds)
    assert [len(f) for f in feature_folds(7)] == [2, 2, 1, 1, 1]


def test_features_drive_shape_and_errors():
    rng = np.random.default_rng(15)
    frames = _colour_frames(rng, 5, 32)
    drive = model_drive(frames, 4, PRFConfig(drive="features"))
    assert drive.shape == (4, len(FEATURES), 32, 32) and drive.dtype == np.float32
    # a grey frame has no colour contrast
    grey = model_drive(np.full((1, 32, 32, 3), 128, np.uint8), 1, PRFConfig(drive="features"))
    assert np.abs(grey[:, 1:3]).max() < 0.01
    with pytest.raises(ConfigError, match="prf.drive"):
        PRFConfig(drive="feature")
    signals = [np.zeros((4, 2), np.float32)] * 2
    with pytest.raises(DataError, match="prf.drive=features"):
        fit_prf([drive[:, 0]] * 2, signals, TR, PRFConfig(drive="features"))
    with pytest.raises(DataError, match="prf.drive=luminance"):
        fit_prf([drive] * 2, signals, TR, PRFConfig(drive="luminance"))
