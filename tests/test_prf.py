"""pRF estimation checked against pRFs the tests place themselves (independent ground truth)."""

import os

import numpy as np
import pytest
from scipy import ndimage

from brain2pix_gluon.config import PRFConfig
from brain2pix_gluon.errors import ConfigError, DataError
from brain2pix_gluon.preprocessing.prf import PRFGrid, fit_prf, model_drive
from brain2pix_gluon.preprocessing.retina import fisheye_warp

S = 96
TR = 0.7


def _hrf(tr):
    """SPM-style double gamma written out here (peak 6 s, undershoot 16 s, ratio 1/6)."""
    from math import gamma

    t = np.arange(0.0, 32.0, tr)
    h = t ** 5 * np.exp(-t) / gamma(6) - t ** 15 * np.exp(-t) / gamma(16) / 6.0
    return h / h.sum()


def _gaussians(xs, ys, sigmas, size=S):
    coords = (np.arange(size) + 0.5) / size - 0.5
    d2 = (coords[None, :, None] - ys[:, None, None]) ** 2 + (coords[None, None, :] - xs[:, None, None]) ** 2
    return np.exp(-d2 / (2 * sigmas[:, None, None] ** 2))       # (voxels, rows = y, cols = x)


def _texture_frames(rng, n, size=S):
    noise = ndimage.gaussian_filter(rng.normal(size=(n, size, size)), (0, 1, 1))
    grey = np.clip(128 + 50 * noise / noise.std(), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def _bar_frames(rng, n, size=S):
    """Checkerboard bars sweeping in 8 directions over a grey background; returns frames, apertures."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    check = ((yy // 3 + xx // 3) % 2) * 2 - 1
    frames = np.empty((n, size, size, 3), np.uint8)
    apertures = np.zeros((n, size, size), np.float32)
    for t in range(n):
        angle = (t // 20) * np.pi / 4 + rng.uniform(-0.1, 0.1)
        pos = ((t % 20) / 19.0 - 0.5) * size * 1.1
        dist = (xx - size / 2) * np.cos(angle) + (yy - size / 2) * np.sin(angle) - pos
        inside = np.abs(dist) < 6
        phase = 1 if t % 2 else -1  # counter-phase flicker: the mean luminance stays grey
        grey = np.where(inside, 128 + 100 * phase * check, 128)
        frames[t] = grey[..., None].astype(np.uint8)
        apertures[t] = inside
    return frames, apertures


def _bold(stimulus, weights, hrf, rng, noise):
    """Responses (time, voxels): pRF-weighted stimulus, convolved with the HRF, plus noise (the
    run's mean stimulus is taken as what was shown before it: no onset response)."""
    drive = np.einsum("tyx,vyx->tv", stimulus, weights)
    drive = drive - drive.mean(axis=0)
    bold = np.stack([np.convolve(drive[:, v], hrf)[: len(drive)] for v in range(drive.shape[1])], 1)
    bold = bold / bold.std(axis=0)
    return (bold + noise * rng.normal(size=bold.shape)).astype(np.float32)


def _truth(rng, n):
    # x and y drawn from different ranges so that swapping them cannot pass
    xs = rng.uniform(-0.38, 0.38, n)
    ys = rng.uniform(-0.2, 0.38, n)
    sigmas = rng.uniform(0.012, 0.035, n)    # V1-like: 1.2-3.4 px at 96 px
    return xs, ys, sigmas


def test_luminance_pRFs_recovered_within_a_pixel():
    rng = np.random.default_rng(1)
    xs, ys, sigmas = _truth(rng, 40)
    weights = _gaussians(xs, ys, sigmas)
    hrf = _hrf(TR)
    drives, signals = [], []
    for _ in range(3):
        frames = _texture_frames(rng, 150)
        luminance = fisheye_warp(frames.astype(np.float32) / 255.0).mean(axis=-1)
        signals.append(_bold(luminance, weights, hrf, rng, noise=0.7))
        drives.append(model_drive(frames, 150, PRFConfig(drive="luminance")))
    fit = fit_prf(drives, signals, TR, PRFConfig(drive="luminance"))
    error_px = np.hypot(fit["x"] - xs, fit["y"] - ys) * S
    assert np.median(error_px) <= 1.0
    assert np.percentile(error_px, 90) <= 2.0
    assert np.median(np.abs(np.log(fit["sigma"] / sigmas))) < np.log(1.25)
    assert np.all(fit["r2"] > 0.2)


def test_refinement_goes_below_the_grid_step():
    # the grid has a candidate every 2 px: without refinement the median error would be ~0.77 px
    rng = np.random.default_rng(4)
    xs, ys, sigmas = _truth(rng, 30)
    weights = _gaussians(xs, ys, sigmas)
    drives, signals = [], []
    for _ in range(2):
        frames = _texture_frames(rng, 150)
        luminance = fisheye_warp(frames.astype(np.float32) / 255.0).mean(axis=-1)
        signals.append(_bold(luminance, weights, _hrf(TR), rng, noise=0.05))
        drives.append(model_drive(frames, 150, PRFConfig(drive="luminance")))
    fit = fit_prf(drives, signals, TR, PRFConfig(drive="luminance", grid_stride=2))
    assert np.median(np.hypot(fit["x"] - xs, fit["y"] - ys) * S) <= 0.35
    assert np.median(np.abs(np.log(fit["sigma"] / sigmas))) < np.log(1.1)


def test_contrast_drive_finds_pRFs_of_flickering_bars():
    # the truth responds to where the bar's contrast is (the aperture), not to luminance: the
    # counter-phase checkerboard keeps every pixel's mean luminance grey
    rng = np.random.default_rng(2)
    xs, ys, sigmas = _truth(rng, 30)
    sigmas = sigmas + 0.02
    weights = _gaussians(xs, ys, sigmas)
    hrf = _hrf(TR)
    config = PRFConfig(drive="contrast")
    runs, signals = [], []
    for _ in range(2):
        frames, apertures = _bar_frames(rng, 160)
        warped_aperture = fisheye_warp(apertures[..., None])[..., 0]
        signals.append(_bold(warped_aperture, weights, hrf, rng, noise=0.5))
        runs.append(frames)
    fit = fit_prf([model_drive(f, 160, config) for f in runs], signals, TR, config)
    error_px = np.hypot(fit["x"] - xs, fit["y"] - ys) * S
    assert np.median(error_px) <= 1.5
    # the luminance drive cannot see these pRFs: the same fit with it goes astray
    lum_config = PRFConfig(drive="luminance")
    luminance = fit_prf([model_drive(f, 160, lum_config) for f in runs], signals, TR, lum_config)
    assert np.median(np.hypot(luminance["x"] - xs, luminance["y"] - ys) * S) > 3.0


def test_contrast_drive_is_linear_light_contrast_and_ignores_the_warp_rim():
    from brain2pix_gluon.preprocessing.prf import stimulus_drive

    # a uniform frame has no contrast anywhere, also where the warp meets its black corners
    grey = np.full((1, S, S, 3), 128, np.uint8)
    assert np.abs(stimulus_drive(grey, "contrast", 0.5, fisheye=True)).max() < 1e-5
    # contrast is measured on light: a step 0 -> 128 is (128/255)^2.2 / (1 - (128/255)^2.2)
    # = 0.28 times a step 128 -> 255 of the same geometry (gamma-encoded values would give 1.0)
    frames = np.zeros((2, S, S, 3), np.uint8)
    frames[0, :, S // 2:] = 128
    frames[1, :, :S // 2], frames[1, :, S // 2:] = 128, 255
    peaks = stimulus_drive(frames, "contrast", 0.5, fisheye=False).max(axis=(1, 2))
    mid = (128 / 255) ** 2.2
    assert peaks[0] / peaks[1] == pytest.approx(mid / (1 - mid), rel=1e-3)
    # and it is luminance: a black -> green step has 0.7152 / 0.0722 times the contrast of a black
    # -> blue one (Rec. 709 weights of linear light; a plain mean of R, G, B would give 1)
    colour = np.zeros((2, S, S, 3), np.uint8)
    colour[0, :, S // 2:, 1] = 255
    colour[1, :, S // 2:, 2] = 255
    peaks = stimulus_drive(colour, "contrast", 0.5, fisheye=False).max(axis=(1, 2))
    assert peaks[0] / peaks[1] == pytest.approx(0.7152 / 0.0722, rel=1e-3)


def _patch_frames(rng, n, size):
    """Grey frames with textured discs at random places: contrast that varies over space and
    time, with a uniform grey elsewhere (no contrast)."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    frames = np.full((n, size, size, 3), 128, np.uint8)
    for t in range(n):
        texture = ndimage.gaussian_filter(rng.normal(size=(size, size)), 1)
        inside = np.zeros((size, size), bool)
        for _ in range(3):
            cx, cy = rng.uniform(0, size, 2)
            inside |= (xx - cx) ** 2 + (yy - cy) ** 2 < (rng.uniform(0.05, 0.25) * size) ** 2
        grey = np.where(inside, 128 + 60 * texture / texture.std(), 128)
        frames[t] = np.clip(grey, 0, 255)[..., None]
    return frames


def _css_runs(rng, xs, ys, sigmas, exponents, size, n_runs=3, n_t=150, history="blank",
              noise=0.3):
    """Contrast drives and responses of compressive voxels: (sum of contrast x Gaussian) ** n,
    convolved with the HRF. ``history`` is what the voxels saw before each run: a blank screen
    (no contrast: the run starts with an onset response) or the run's mean contrast."""
    weights = _gaussians(xs, ys, sigmas, size)
    config = PRFConfig(drive="contrast")
    drives, signals = [], []
    for _ in range(n_runs):
        drive = model_drive(_patch_frames(rng, n_t, size), n_t, config)
        neural = np.einsum("tyx,vyx->tv", drive, weights) ** exponents
        if history == "mean":
            neural = neural - neural.mean(axis=0)
        bold = np.stack([np.convolve(v, _hrf(TR))[:n_t] for v in neural.T], axis=1)
        bold /= bold[len(_hrf(TR)):].std(axis=0)
        signals.append((bold + noise * rng.normal(size=bold.shape)).astype(np.float32))
        drives.append(drive)
    return drives, signals


def test_compressive_fit_recovers_exponent_and_centre_and_fails_without_compression():
    rng = np.random.default_rng(0)
    size, n = 48, 24
    xs, ys, sigmas = rng.uniform(-0.3, 0.3, n), rng.uniform(-0.25, 0.3, n), rng.uniform(0.03, 0.06, n)
    exponents = np.tile([0.3, 0.6, 1.0], n // 3)
    drives, signals = _css_runs(rng, xs, ys, sigmas, exponents, size)
    fit = fit_prf(drives, signals, TR, PRFConfig(drive="contrast"))
    assert np.median(np.hypot(fit["x"] - xs, fit["y"] - ys) * size) <= 0.5
    found = {n_true: np.median(fit["exponent"][exponents == n_true]) for n_true in (0.3, 0.6, 1.0)}
    assert found[0.3] == pytest.approx(0.3, rel=0.25) and found[0.6] == pytest.approx(0.6, rel=0.25)
    # voxels without compression are found linear: the exponent is measured, not imposed
    assert np.all(fit["exponent"][exponents == 1.0] >= 0.9)
    assert np.median(np.abs(np.log(fit["sigma"] / sigmas))) < np.log(1.25)
    # the linear model (no compression) on the same data: compressive voxels look larger than
    # they are (sub-additive summation read as a wider pRF) and are predicted worse
    linear = fit_prf(drives, signals, TR, PRFConfig(drive="contrast", css_exponents=(1.0,)))
    compressive = exponents < 1
    assert np.median(linear["sigma"][compressive] / sigmas[compressive]) > 1.3
    assert np.all(fit["r2"][exponents == 0.3] > linear["r2"][exponents == 0.3])
    assert np.all(linear["exponent"] == 1.0)


@pytest.mark.parametrize("history", ["blank", "mean"])
def test_what_preceded_a_run_does_not_bias_the_exponent(history):
    # a blank screen before the run makes an onset response that the pooled contrast of the run
    # alone does not predict; with the run's mean contrast before it there is none. Either way
    # the run's onset response is a nuisance and the exponent comes out right.
    rng = np.random.default_rng(5)
    size, n = 48, 12
    xs, ys, sigmas = rng.uniform(-0.3, 0.3, n), rng.uniform(-0.3, 0.3, n), np.full(n, 0.04)
    drives, signals = _css_runs(rng, xs, ys, sigmas, np.full(n, 0.5), size, history=history)
    fit = fit_prf(drives, signals, TR, PRFConfig(drive="contrast"))
    assert np.median(fit["exponent"]) == pytest.approx(0.5, rel=0.2)
    assert np.median(np.hypot(fit["x"] - xs, fit["y"] - ys) * size) <= 0.5


def test_no_pRF_is_placed_where_the_stimulus_never_varies():
    # the drive is dead right of x = 0.25 (as the black corners of a warped frame are): pure-noise
    # voxels and real ones alike must be placed where there is evidence, never on a thin
    # Gaussian tail reaching in from the dead region
    rng = np.random.default_rng(6)
    dead = (np.arange(S) + 0.5) / S - 0.5 > 0.25
    drives, signals = [], []
    xs, ys, sigmas = np.array([-0.2, 0.1]), np.array([0.1, -0.2]), np.array([0.02, 0.03])
    for _ in range(2):
        d = ndimage.gaussian_filter(rng.normal(size=(120, S, S)), (0, 1.5, 1.5)).astype(np.float32)
        d[:, :, dead] = 0.0
        drives.append(d - d.mean(axis=0))
        sig = rng.normal(size=(120, 40)).astype(np.float32)
        pooled = np.einsum("tyx,vyx->tv", d, _gaussians(xs, ys, sigmas))
        bold = np.stack([np.convolve(p, _hrf(TR))[:120] for p in pooled.T], axis=1)
        sig[:, :2] += 3 * bold / bold.std(axis=0)
        signals.append(sig)
    config = PRFConfig(drive="luminance", grid_stride=2, n_sigma=4, sigma_min=0.008,
                       sigma_max=0.05)
    fit = fit_prf(drives, signals, TR, config)
    assert np.all(fit["x"] <= 0.25)
    np.testing.assert_allclose(fit["x"][:2], xs, atol=1.5 / S)
    np.testing.assert_allclose(fit["y"][:2], ys, atol=1.5 / S)
    # a stimulus that never varies anywhere leaves no candidate: a clear error, not corner pRFs
    blank = [np.zeros_like(d) for d in drives]
    with pytest.raises(DataError, match="the drive varies over too few pixels"):
        fit_prf(blank, signals, TR, config)


def _nuisance_out(values, n_t, tr=TR):
    """Residual of a least-squares fit of a constant and the onset response (the HRF's running
    sum) per column: what a run's responses hold besides the pRF's."""
    onset = np.cumsum(np.concatenate([_hrf(tr), np.zeros(n_t)]))[:n_t]
    nuisance = np.stack([np.ones(n_t), onset], axis=1)
    coef = np.linalg.lstsq(nuisance, values, rcond=None)[0]
    return values - nuisance @ coef


def _unit(signal):
    """A run's responses, nuisance out, scaled to unit variance per voxel."""
    out = _nuisance_out(np.asarray(signal, np.float64), len(signal))
    return out / np.sqrt(np.mean(out ** 2, axis=0))


def _slow_grid_fit(drives, signals, grid, exponents=(1.0,), held=None):
    """Reference: the explicit model time course of every candidate (Gaussian-weighted sum of the
    drive, raised to the exponent, HRF, nuisance out), then correlation and gain per voxel."""
    size = grid.size
    coords = (np.arange(size) + 0.5) / size - 0.5
    cands = [(n, s, y, x) for n in exponents for s in grid.sigmas for y in grid.positions
             for x in grid.positions]
    runs = [r for r in range(len(drives)) if r != held]
    ys = [_unit(sig) for sig in signals]
    h = _hrf(TR)

    def course(run, cand):
        n, s, y, x = cand
        g = np.exp(-((coords[:, None] - y) ** 2 + (coords[None, :] - x) ** 2) / (2 * s * s))
        m = np.einsum("tyx,yx->t", drives[run].astype(np.float64), g) ** n
        m = np.convolve(m, h)[: len(m)]
        return _nuisance_out(m[:, None], len(m))[:, 0]

    best = []
    for v in range(signals[0].shape[1]):
        scores = []
        for cand in cands:
            m = np.concatenate([course(r, cand) for r in runs])
            y = np.concatenate([ys[r][:, v] for r in runs])
            scores.append(m @ y / np.sqrt(m @ m))
        i = int(np.argmax(scores))
        m = np.concatenate([course(r, cands[i]) for r in runs])
        y = np.concatenate([ys[r][:, v] for r in runs])
        best.append((cands[i], m @ y / (m @ m), scores[i] / np.sqrt(y @ y)))
    return best, course


def _check_against_explicit_fit(drives, signals, config, exponents):
    grid = PRFGrid(drives[0].shape[1], config)
    fit = fit_prf(drives, signals, TR, config)
    full, _ = _slow_grid_fit(drives, signals, grid, exponents)
    step = grid.stride / grid.size
    log_steps = np.diff(np.log(exponents)) if len(exponents) > 1 else [0.0]
    for v, ((n, s, y, x), _gain, r) in enumerate(full):
        assert abs(fit["x"][v] - x) <= step / 2 + 1e-9 and abs(fit["y"][v] - y) <= step / 2 + 1e-9
        # the exponent is refined within half a grid step (in log n) of the best grid exponent
        assert abs(np.log(fit["exponent"][v] / n)) <= 0.5 * max(log_steps) + 1e-9
        assert fit["r"][v] == pytest.approx(r, rel=1e-4)
    # leave-one-run-out R^2, computed explicitly
    n_voxels = signals[0].shape[1]
    sse, sst = np.zeros(n_voxels), np.zeros(n_voxels)
    for held in range(len(drives)):
        fold, course = _slow_grid_fit(drives, signals, grid, exponents, held=held)
        y_held = _unit(signals[held])
        for v, (cand, gain, _r) in enumerate(fold):
            sse[v] += np.sum((y_held[:, v] - gain * course(held, cand)) ** 2)
            sst[v] += np.sum(y_held[:, v] ** 2)
    np.testing.assert_allclose(fit["r2"], 1 - sse / sst, rtol=1e-4, atol=1e-5)
    return fit


def test_grid_search_and_cross_validation_match_explicit_time_courses():
    rng = np.random.default_rng(3)
    size, n_runs, n_t = 24, 3, 100
    drives = [rng.normal(size=(n_t, size, size)).astype(np.float32) for _ in range(n_runs)]
    signals = [rng.normal(size=(n_t, 4)).astype(np.float32) for _ in range(n_runs)]
    xs, ys, sig = np.array([-0.3, 0.2, 0.1, 0.0]), np.array([0.25, -0.1, 0.3, 0.0]), np.full(4, 0.05)
    w = _gaussians(xs, ys, sig, size)
    for r in range(n_runs):
        pooled = np.einsum("tyx,vyx->tv", drives[r], w)[:, :3]
        signals[r][:, :3] += 2 * np.stack([np.convolve(p, _hrf(TR))[:n_t] for p in pooled.T], 1)
    config = PRFConfig(drive="luminance", grid_stride=3, n_sigma=3, sigma_min=0.03,
                       sigma_max=0.12, chunk_voxels=3)
    fit = _check_against_explicit_fit(drives, signals, config, (1.0,))
    assert fit["r2"][:3].min() > fit["r2"][3]
    assert np.all(fit["exponent"] == 1.0)
    # a voxel without variance (NaN or constant in the data) gets no estimate at all
    signals = [np.concatenate([s, np.full((n_t, 1), np.nan, np.float32)], axis=1) for s in signals]
    fit = fit_prf(drives, signals, TR, config)
    assert all(np.isnan(fit[name][4]) for name in ("x", "y", "sigma", "exponent", "r", "r2",
                                                   "beta"))
    assert np.isfinite(fit["x"][:4]).all()


def test_compressive_grid_search_and_cross_validation_match_explicit_time_courses():
    # the same check for the CSS model: every candidate's time course is (pooled drive) ** n
    # before the HRF, over a grid of exponents; chunks of 2 voxels split the 5 voxels unevenly
    rng = np.random.default_rng(8)
    size, n_runs, n_t = 24, 3, 100
    drives = [np.abs(rng.normal(size=(n_t, size, size))).astype(np.float32) for _ in range(n_runs)]
    signals = [rng.normal(size=(n_t, 5)).astype(np.float32) for _ in range(n_runs)]
    xs, ys, sig = np.array([-0.3, 0.2, 0.1, 0.0, 0.2]), np.array([0.25, -0.1, 0.3, 0.0, 0.2]), \
        np.full(5, 0.05)
    true_n = np.array([0.3, 1.0, 0.6, 0.5, 0.5])
    w = _gaussians(xs, ys, sig, size)
    for r in range(n_runs):
        neural = np.einsum("tyx,vyx->tv", drives[r], w) ** true_n
        signals[r][:, :3] += 3 * np.stack([np.convolve(p, _hrf(TR))[:n_t] / p.std()
                                           for p in neural[:, :3].T], 1)
    exponents = (0.3, 0.6, 1.0)
    config = PRFConfig(drive="contrast", css_exponents=exponents, grid_stride=3, n_sigma=3,
                       sigma_min=0.03, sigma_max=0.12, chunk_voxels=2)
    fit = _check_against_explicit_fit(drives, signals, config, exponents)
    assert fit["r2"][:3].min() > fit["r2"][3:].max()


def test_bad_input_is_refused():
    drive = np.zeros((10, 8, 8), np.float32)
    with pytest.raises(DataError, match="at least 2 runs"):
        fit_prf([drive], [np.zeros((10, 3), np.float32)], TR)
    with pytest.raises(DataError, match="signals of run 1"):
        fit_prf([drive, drive], [np.zeros((10, 3)), np.zeros((9, 3))], TR)
    with pytest.raises(DataError, match="prf.grid_stride: expected 1 ... 8 pixels, got 9"):
        fit_prf([drive, drive], [np.zeros((10, 3))] * 2, TR,
                PRFConfig(drive="luminance", grid_stride=9))
    with pytest.raises(DataError, match="tr must be a positive number of seconds, got 0"):
        fit_prf([drive, drive], [np.zeros((10, 3))] * 2, 0, PRFConfig(drive="luminance"))
    # a power of a negative pooled drive is not a contrast energy (nor a real number)
    negative = drive - 1.0
    with pytest.raises(DataError, match=r"non-negative drive .*run 0 has values down to -1"):
        fit_prf([negative, drive], [np.ones((10, 3))] * 2, TR, PRFConfig(drive="contrast"))
    with pytest.raises(ConfigError, match=r"prf.css_exponents: expected one or more distinct "
                                          r"values, each a finite number x with 0 < x <= 2"):
        PRFConfig(css_exponents=(0.5, 0.0))
    # the section's own rules hold as soon as it is built (one rule, in config.RULES)
    with pytest.raises(ConfigError, match="prf.grid_stride: expected an integer >= 1, got 0"):
        PRFConfig(grid_stride=0)
    with pytest.raises(ConfigError, match="expected sigma_min < sigma_max, got .0.2, 0.2."):
        PRFConfig(sigma_min=0.2, sigma_max=0.2)


def test_estimate_rf_refuses_an_unknown_dataset(tmp_path, capsys):
    from brain2pix_gluon.cli import main

    assert main(["estimate-rf", str(tmp_path), "data.dataset=nsd", "--no-progress"]) == 2
    assert "dataset: expected one of ['raw', 'vim2'], got 'nsd'" in capsys.readouterr().err


def _true(truth, key, axis):
    """The simulator's true centre along x or y (``<key>_x``; earlier versions: ``<key>_cols``)."""
    name = f"{key}_{axis}"
    return truth[name] if name in truth else truth[f"{key}_{dict(x='cols', y='rows')[axis]}"]


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    """A simulated raw dataset with runs long enough for pRF fits (the session one has 2 x 60);
    voxels follow the linear luminance pRF model (simulator v2), so the estimates can be checked
    against a truth that the luminance drive can recover."""
    from brain2pix_gluon.data.simulation import simulate_dataset

    from conftest import tiny_config

    config = tiny_config("simulation.n_train_runs=3", "simulation.volumes_per_run=150",
                         "simulation.n_voxels=60,40,40", "simulation.volumes_per_clip=40",
                         "simulation.n_repetitions=1", "simulation.drive=luminance")
    out = str(tmp_path_factory.mktemp("prf_raw"))
    simulate_dataset(out, config.simulation, config.data, show_progress=False)
    return out


def test_estimate_rf_writes_centres_that_prepare_reads(tmp_path, sim_dir, capsys):
    raw_dir = sim_dir
    from brain2pix_gluon.cli import main
    from brain2pix_gluon.io.matlab import read_mat
    from brain2pix_gluon.io.raw import MASK_KEYS, load_rf_centres, load_roi_masks

    out = str(tmp_path / "estimated")
    overrides = ["data.image_size=32", "prf.r2_threshold=0.5", "prf.drive=luminance"]
    assert main(["estimate-rf", raw_dir, "--out", out, "--no-progress", *overrides]) == 0
    # what a user without true pRFs can judge a fit by: R^2, orientation, size vs eccentricity
    log = capsys.readouterr().err
    assert "pRF fits per ROI" in log and "verdict: aligned" in log and "Spearman rho" in log
    masks = load_roi_masks(os.path.join(raw_dir, "roimask.mat"))
    cols, rows = load_rf_centres(os.path.join(out, "col_centers_112px.mat"),
                                 os.path.join(out, "row_centers_112px.mat"), masks)
    est = np.load(os.path.join(out, "prf_estimates.npz"))
    truth = np.load(os.path.join(raw_dir, "truth.npz"))
    n_below = n_kept = 0
    field = {"d": [], "v": []}
    for key in MASK_KEYS:
        assert cols[key].shape == (masks[key].sum(),)
        below = ~(est[f"{key}_r2"] >= 0.5)
        n_below += below.sum()
        n_kept += (~below).sum()
        assert np.isnan(cols[key][below]).all() and np.isnan(rows[key][below]).all()
        assert np.isfinite(cols[key][~below]).all()
        np.testing.assert_array_equal(cols[key][~below], est[f"{key}_x"][~below])
        field[key[-1]].append(rows[key][~below])
    assert n_below > 0 and n_kept > 0
    # dorsal parts see the lower visual field (rows below the centre), ventral the upper (true
    # means about +-0.19), pooled over V1-V3
    assert np.mean(np.concatenate(field["d"])) > 0.05 > -0.05 > np.mean(np.concatenate(field["v"]))
    v1 = np.concatenate([np.hypot(cols[k] - _true(truth, k, "x"), rows[k] - _true(truth, k, "y"))
                         for k in ("V1d", "V1v")])
    assert np.nanmedian(v1) * 32 < 1.5
    assert set(read_mat(os.path.join(out, "col_centers_112px.mat"))) == set(MASK_KEYS)
    # the summary: one coverage panel per mask key plus the R^2 histogram, 2.6 x 3 inches
    # each at 100 dpi; the R^2 threshold line is drawn in pure red on the histogram
    from PIL import Image

    with Image.open(os.path.join(out, "prf_summary.png")) as image:
        picture = np.asarray(image.convert("RGB")).astype(int)
    assert picture.shape == (300, round(2.6 * (len(MASK_KEYS) + 1) * 100), 3)
    red = (picture[..., 0] > 200) & (picture[..., 1] < 60) & (picture[..., 2] < 60)
    histogram = picture.shape[1] * len(MASK_KEYS) // (len(MASK_KEYS) + 1)
    assert red[:, histogram:].sum() > 50 and red[:, :histogram].sum() == 0
    assert not [p for p in os.listdir(out) if "work" in p or "partial" in p]
    # existing centre files are kept unless --force
    assert main(["estimate-rf", raw_dir, "--out", out, "--no-progress", *overrides]) == 2


def test_quality_report_reads_r2_retinotopy_and_size_against_eccentricity():
    from brain2pix_gluon.config import Config
    from brain2pix_gluon.preprocessing.estimate_rf import format_prf_quality, prf_quality_report

    # V1: 101 voxels per part, R^2 0.00, 0.01, ... 1.00 (so its percentiles are 0.1 ... 0.9), one
    # NaN; dorsal in the lower field, ventral in the upper; the compressive size sigma/sqrt(n)
    # grows with eccentricity although sigma alone falls (the exponent falls faster).
    # V2: dorsal and ventral swapped (upside down), size falling with eccentricity.
    n = 101
    ecc = np.linspace(0.02, 0.45, n)
    estimates = {}
    for key, sign in (("V1d", 1), ("V1v", -1), ("V2d", -1), ("V2v", 1)):
        estimates[f"{key}_x"] = ecc * 0.6
        estimates[f"{key}_y"] = sign * ecc * 0.8
        estimates[f"{key}_r2"] = np.linspace(0.0, 1.0, n)
        if key.startswith("V1"):
            estimates[f"{key}_exponent"] = (0.5 - ecc) ** 2         # sqrt: 0.48 ... 0.05
            estimates[f"{key}_sigma"] = 0.05 - 0.02 * ecc            # falls
        else:
            estimates[f"{key}_exponent"] = np.ones(n)
            estimates[f"{key}_sigma"] = 0.06 - 0.1 * ecc
    estimates["V1d_r2"] = estimates["V1d_r2"].copy()
    estimates["V1d_r2"][0] = np.nan
    parts = {"V1": ("V1d", "V1v"), "V2": ("V2d", "V2v")}
    report = prf_quality_report(estimates, parts, "dorsal_ventral", Config())
    v1, v2 = report["rois"]["V1"], report["rois"]["V2"]
    # 201 finite values: 0.00 (once), 0.01 ... 1.00 (twice)
    r2 = np.concatenate([np.linspace(0.01, 1.0, 100), np.linspace(0.0, 1.0, n)])
    np.testing.assert_allclose(v1["r2_percentiles"], np.percentile(r2, [10, 25, 50, 75, 90]))
    # kept: R^2 >= 0.05 (0.05 itself is 0.05000000000000000277, kept)
    assert v1["n"] == 2 * n and v1["n_kept"] == 2 * (n - 5)
    assert v1["size_eccentricity_rho"] == pytest.approx(1.0)
    assert v2["size_eccentricity_rho"] == pytest.approx(-1.0)
    # the median size in the band 0.1 <= eccentricity < 0.2: sigma / sqrt(n) at its middle voxel
    band = (ecc >= 0.1) & (ecc < 0.2) & (np.linspace(0.0, 1.0, n) >= 0.05)
    expected = np.median(((0.05 - 0.02 * ecc) / (0.5 - ecc))[band])
    assert v1["size_by_eccentricity"][1] == pytest.approx(expected)
    assert report["retinotopy"]["rois"]["V1"]["verdict"] == "aligned"
    assert report["retinotopy"]["rois"]["V2"]["verdict"] == "flipped"
    lines = format_prf_quality(report, size=96)
    assert any(line.startswith("  V1:") and "-> rises" in line for line in lines)
    assert any(line.startswith("  V2:") and "-> does not rise" in line for line in lines)
