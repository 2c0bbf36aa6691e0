"""Population receptive fields (pRFs) estimated from the training data (``brain2pix estimate-rf``).

Brain2Pix needs an RF centre for every voxel (paper section 2.3, eqs. 1-2); most datasets do not
ship them. This module fits, for every voxel, an isotropic Gaussian pRF (Dumoulin & Wandell 2008):

    prediction(t) = beta * [HRF * sum_p g(p; x, y, sigma) drive_p](t)  + one intercept per run,

where ``drive_p(t)`` is a per-pixel stimulus feature of the frame shown at volume ``t`` on the same
fisheye-warped ``S x S`` frames the network is trained on (the released centres were estimated on
warped frames), ``g`` is a Gaussian at ``(x, y)`` with size ``sigma`` and ``HRF`` a canonical
double-gamma response sampled at the TR.

Drives (``PRFConfig.drive``)
----------------------------
``"luminance"`` (default)
    Mean of R, G, B of the warped frame. On the package's simulator (version 3), whose voxels mix
    compressed contrast energy, colour-opponent signals and luminance, it recovers the true
    centres better than the contrast drive: on the embedded dataset's default settings, every
    voxel fitted, the median error of V1 centres is 3.0 px of 96 with it (cross-validated R^2
    0.26) and 6.0 px with the contrast drive (R^2 0.04, below the default ``r2_threshold`` of
    0.05, so that most of its centres would be written as NaN).
``"contrast"``
    Local RMS contrast (contrast energy) of the light: the relative luminance (Rec. 709 weights)
    of the linearised frame, minus its Gaussian blur (a centre-surround band-pass), squared,
    blurred again, square-rooted. The blurs are normalised over the warp's valid field, so the
    edge between the warped image and its black corners, which is not in the video, adds no
    contrast. Early visual cortex responds to contrast rather than to mean luminance; try it on
    real recordings (e.g. vim-2) and compare the cross-validated R^2 of both drives.

Candidates (for either drive) are only those with at least half their in-frame weight on pixels
where the drive varies: a
Gaussian centred in the black corners would be fitted on the thin tail it has inside the image,
and a correlation, which ignores scale, can prefer such a tail to the voxel's true pRF.

Coordinates
-----------
``x`` is horizontal (column of the upright frame, -0.5 left ... +0.5 right) and ``y`` vertical (row,
-0.5 top ... +0.5 bottom), pixel ``k`` having its centre at ``(k + 0.5) / S - 0.5``; ``sigma`` is in
the same image units. These are the ``col`` and ``row`` centres that ``prepare`` reads.

How the fit stays fast
----------------------
The model is linear in the drive, so for a voxel with per-run z-scored response ``y`` and the
HRF-convolved, per-run centred drive ``D`` (time x pixels) the covariance of every candidate with
``y`` is ``g^T (D^T y)`` and the candidate's variance ``g^T (D^T D) g`` does not depend on the
voxel. One pass over the runs gives ``C = D^T y`` for a chunk of voxels (one matrix product per
run); pooling ``C`` with the separable Gaussian profiles (two matrix products per sigma) gives the
correlation of *every* grid candidate (all grid positions x all sigmas) at once -- the same result
as correlating with a precomputed (n_grid, T) matrix of model time courses, without ever holding
it. The candidate variances are pooled once from the drive. Refinement fits a parabola through the
correlations at the best grid point and its neighbours along x, y and log sigma.

Cross-validation (leave one run out): for each held-out run the grid search is repeated on the
other runs (their ``C`` and variances are the totals minus the held-out run's), the gain ``beta``
is the least-squares scale on those runs, and the held-out residuals give
``R^2 = 1 - sum SSE / sum SS`` pooled over folds. It is the R^2 of the grid fit (before the
sub-grid refinement), so it is slightly conservative.

Memory is bounded by the voxel chunk: ``n_runs x chunk x S^2`` floats for the per-run ``C``
plus the drive of one run; the runs are read from disk (memory maps) for every chunk.
"""

import numpy as np

from ..config import PRFConfig
from ..errors import DataError, check_array, check_choice
from ..utils import progress
from .hrf import double_gamma_hrf, hrf_convolve

__all__ = ["DRIVES", "pixel_coordinates", "stimulus_drive", "model_drive", "PRFGrid", "fit_prf"]

DRIVES = ("luminance", "contrast")
_REC709_LUMINANCE = np.array([0.2126, 0.7152, 0.0722], np.float32)


def pixel_coordinates(size):
    """Centres of the pixels of an ``size``-pixel axis in image units, shape (size,)."""
    return (np.arange(size) + 0.5) / size - 0.5


def stimulus_drive(frames, kind, max_ratio, fisheye=True, contrast_sigma=1.0):
    """Per-pixel stimulus drive of RGB frames, on the fisheye-warped frames the model trains on.

    Parameters
    ----------
    frames : ndarray, shape (n_frames, S, S, 3), uint8
    kind : {"luminance", "contrast"}
        See the module docstring.
    max_ratio : float
        Fisheye warp strength (``data.max_ratio``).
    fisheye : bool
        Warp the frames first (``data.fisheye``).
    contrast_sigma : float
        Width in pixels of the blur of the ``"contrast"`` drive.

    Returns
    -------
    ndarray, shape (n_frames, S, S), float32
        Rows are ``y``, columns ``x``.
    """
    from .retina import cached_warp

    check_choice(kind, "prf.drive", DRIVES)
    arr = check_array(frames, "frames", ndim=4, dtype_kind="u")
    if arr.shape[-1] != 3 or arr.shape[1] != arr.shape[2]:
        raise DataError(f"frames: expected shape (n_frames, S, S, 3), got {arr.shape}")
    if fisheye:
        rgb = cached_warp(arr.shape[1], max_ratio)(arr, scale=1.0 / 255.0)
    else:
        rgb = arr.astype(np.float32) / np.float32(255.0)
    if kind == "luminance":
        return rgb.mean(axis=-1, dtype=np.float32)
    from scipy import ndimage

    # contrast is a property of light, not of the gamma-encoded pixel values: relative luminance
    # (Rec. 709 weights) of the linearised frame (sRGB decoded with a 2.2 power)
    # (in place: ``rgb`` is this function's own array, and a run can hold gigabytes of it)
    np.clip(rgb, 0.0, 1.0, out=rgb)
    np.power(rgb, np.float32(2.2), out=rgb)
    luminance = rgb @ _REC709_LUMINANCE

    from ..evaluation.metrics import fisheye_valid_mask

    # Blurs are normalised over the warp's valid field (normalised convolution): the edge between
    # the warped image and its black corners is not in the video, and unnormalised it would be the
    # strongest contrast of every frame, pulling every fitted pRF onto the rim.
    valid = fisheye_valid_mask(arr.shape[1], max_ratio, fisheye).astype(np.float32)
    weight = np.maximum(ndimage.gaussian_filter(valid, contrast_sigma, mode="nearest"), 1e-6)
    blur = (0.0, contrast_sigma, contrast_sigma)
    surround = ndimage.gaussian_filter(luminance * valid, blur, mode="nearest") / weight
    band = (luminance - surround) * valid
    energy = ndimage.gaussian_filter(band * band, blur, mode="nearest") / weight
    return (np.sqrt(np.maximum(energy, 0.0)) * valid).astype(np.float32)


def model_drive(frames, n_volumes, tr, config=None, max_ratio=None, fisheye=True):
    """The design drive of one run: drive, HRF-convolved, centred per pixel over the run.

    Frame ``t`` is the frame shown during volume ``t`` (one frame per TR from the run's start).
    Only the first ``min(n_frames, n_volumes)`` volumes are used: frames after the last volume
    were never measured, and volumes after the last frame saw no known stimulus.

    Parameters
    ----------
    frames : ndarray, shape (n_frames, S, S, 3), uint8
    n_volumes : int
        Volumes of the run.
    tr : float
        Seconds per volume (HRF sampling).
    config : PRFConfig, optional
    max_ratio : float, optional
        Fisheye warp strength (default ``data.max_ratio``'s default).
    fisheye : bool

    Returns
    -------
    ndarray, shape (min(n_frames, n_volumes), S, S), float32
    """
    from ..config import DataConfig

    config = config or PRFConfig()
    max_ratio = DataConfig.max_ratio if max_ratio is None else max_ratio
    n_use = min(int(n_volumes), len(frames))
    drive = stimulus_drive(frames[:n_use], config.drive, max_ratio, fisheye, config.contrast_sigma)
    drive = hrf_convolve(drive, double_gamma_hrf(tr))
    drive -= drive.mean(axis=0, keepdims=True)
    return drive


class PRFGrid:
    """The candidate pRFs: every ``stride``-th pixel in x and y times log-spaced sigmas.

    Parameters
    ----------
    size : int
        Frame side S.
    config : PRFConfig

    Attributes
    ----------
    positions : ndarray, shape (n_positions,)
        Candidate centres along x and along y (image units).
    sigmas : ndarray, shape (n_sigma,)
    profiles : ndarray, shape (n_sigma, n_positions, S), float32
        ``exp(-(pixel - position)^2 / (2 sigma^2))``; the 2-D Gaussian at (x, y) is the outer
        product of the y profile and the x profile.
    """

    def __init__(self, size, config):
        # the other settings are checked when the PRFConfig is built; this one depends on S
        if config.grid_stride > size:
            raise DataError(f"prf.grid_stride: expected 1 ... {size} pixels, got {config.grid_stride}")
        self.size = int(size)
        self.stride = int(config.grid_stride)
        first = (self.stride - 1) // 2
        self.positions = pixel_coordinates(size)[first::self.stride]
        self.sigmas = np.geomspace(config.sigma_min, config.sigma_max, config.n_sigma)
        self.profiles = np.stack([self.profile(self.positions, s) for s in self.sigmas])
        self._stacked_t = np.ascontiguousarray(self.profiles.reshape(-1, size).T)

    def profile(self, centres, sigma):
        """Gaussian profiles over the pixels of one axis, shape (n_centres, S), float32."""
        coords = pixel_coordinates(self.size)
        centres = np.atleast_1d(np.asarray(centres, float))
        sigma = np.broadcast_to(np.asarray(sigma, float), centres.shape)
        out = np.exp(-(coords[None, :] - centres[:, None]) ** 2 / (2.0 * sigma[:, None] ** 2))
        return out.astype(np.float32)

    @property
    def shape(self):
        """(n_sigma, n_positions_y, n_positions_x)."""
        return (len(self.sigmas), len(self.positions), len(self.positions))

    def pool(self, maps):
        """Gaussian-weighted sums of maps at every grid candidate.

        Parameters
        ----------
        maps : ndarray, shape (k, S, S)
            Rows are ``y``, columns ``x``.

        Returns
        -------
        ndarray, shape (k, n_sigma, n_positions_y, n_positions_x), float32
        """
        maps = np.asarray(maps, dtype=np.float32)
        k, s = maps.shape[0], self.size
        n_s, n = len(self.sigmas), len(self.positions)
        # all sigmas in one product along x (a wide matrix keeps BLAS efficient), then per sigma
        # along y, batched over voxels
        over_x = maps.reshape(k * s, s) @ self._stacked_t                    # (k*y, n_s*n_x)
        over_x = over_x.reshape(k, s, n_s, n)
        out = np.empty((k,) + self.shape, np.float32)
        for i, prof in enumerate(self.profiles):
            np.matmul(prof, over_x[:, :, i, :], out=out[:, i])               # (k, n_y, n_x)
        return out

    def candidate_variance(self, drive, block=256):
        """Sum over time of the squared candidate time courses of one run's drive.

        Parameters
        ----------
        drive : ndarray, shape (n_volumes, S, S)
            Centred design drive (:func:`model_drive`).

        Returns
        -------
        ndarray, shape (n_sigma, n_positions_y, n_positions_x), float64
        """
        total = np.zeros(self.shape, np.float64)
        for start in range(0, drive.shape[0], block):
            pooled = self.pool(drive[start:start + block])
            total += np.einsum("tsyx,tsyx->syx", pooled, pooled, dtype=np.float64)
        return total

    def point_sums(self, maps, index):
        """Gaussian-weighted sums of one map per voxel at one candidate per voxel.

        Parameters
        ----------
        maps : ndarray, shape (k, S, S)
        index : tuple of ndarray, each shape (k,)
            (sigma index, y index, x index) into the grid.

        Returns
        -------
        ndarray, shape (k,), float64
        """
        i_s, i_y, i_x = index
        prof_y = self.profiles[i_s, i_y]
        prof_x = self.profiles[i_s, i_x]
        return np.einsum("ky,kyx,kx->k", prof_y, maps, prof_x, dtype=np.float64)


def _argmax_grid(scores):
    """Per-voxel (sigma, y, x) index of the largest score; scores shape (k, n_s, n_y, n_x)."""
    flat = scores.reshape(scores.shape[0], -1).argmax(axis=1)
    return np.unravel_index(flat, scores.shape[1:])


def _inverse_sqrt(variance):
    """1 / sqrt(variance), 0 where a candidate never varies (no NaN reaches the argmax)."""
    with np.errstate(divide="ignore"):
        return np.where(variance > 0, 1.0 / np.sqrt(variance), 0.0).astype(np.float32)


def _parabola_offset(lower, centre, upper):
    """Vertex of the parabola through (-1, lower), (0, centre), (1, upper), clipped to +-0.5."""
    curvature = lower - 2.0 * centre + upper
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature < 0, 0.5 * (lower - upper) / curvature, 0.0)
    return np.clip(np.nan_to_num(offset), -0.5, 0.5)


def _refine(scores, index):
    """Sub-grid offsets along (sigma, y, x) from the scores around each voxel's best candidate."""
    k = scores.shape[0]
    voxels = np.arange(k)
    offsets = []
    for axis in range(3):
        idx = list(index)
        n = scores.shape[axis + 1]
        inner = (index[axis] > 0) & (index[axis] < n - 1)
        lo, hi = list(idx), list(idx)
        lo[axis] = np.clip(index[axis] - 1, 0, n - 1)
        hi[axis] = np.clip(index[axis] + 1, 0, n - 1)
        centre = scores[(voxels, *idx)]
        lower = scores[(voxels, *lo)]
        upper = scores[(voxels, *hi)]
        offsets.append(np.where(inner, _parabola_offset(lower, centre, upper), 0.0))
    return offsets


def fit_prf(drives, signals, config=None, show_progress=False):
    """Fit an isotropic Gaussian pRF to every voxel (see the module docstring).

    Parameters
    ----------
    drives : sequence of array_like, each shape (n_volumes_r, S, S)
        Design drive of each run (:func:`model_drive`); memory maps are read lazily.
    signals : sequence of array_like, each shape (n_volumes_r, n_voxels)
        Responses of each run, same volumes as the drive; z-scored per run here.
    config : PRFConfig, optional
    show_progress : bool

    Returns
    -------
    dict of str -> ndarray, each shape (n_voxels,)
        ``x``, ``y`` (centres, image units, x = column, y = row), ``sigma``, ``r`` (in-sample
        correlation of the best grid candidate), ``r2`` (leave-one-run-out cross-validated R^2,
        NaN for voxels without variance) and ``beta`` (gain of the fit on all runs).
    """
    config = config or PRFConfig()
    if len(drives) != len(signals):
        raise DataError(f"fit_prf: got {len(drives)} drive runs but {len(signals)} signal runs")
    if len(drives) < 2:
        raise DataError(f"fit_prf: leave-one-run-out cross-validation needs at least 2 runs, "
                        f"got {len(drives)}")
    size = None
    n_voxels = None
    for r, (drive, sig) in enumerate(zip(drives, signals)):
        if drive.ndim != 3 or drive.shape[1] != drive.shape[2]:
            raise DataError(f"drive of run {r}: expected shape (n_volumes, S, S), got {drive.shape}")
        if sig.ndim != 2 or sig.shape[0] != drive.shape[0]:
            raise DataError(f"signals of run {r}: expected shape ({drive.shape[0]}, n_voxels) to "
                            f"match its drive, got {sig.shape}")
        if size is None:
            size, n_voxels = drive.shape[1], sig.shape[1]
        if drive.shape[1] != size or sig.shape[1] != n_voxels:
            raise DataError(f"run {r}: drive {drive.shape} / signals {sig.shape} disagree with run 0 "
                            f"(S = {size}, {n_voxels} voxels)")
    grid = PRFGrid(size, config)
    # one pass over every run's drive: its candidates' variances and its pixels' power
    variances, power = [], np.zeros((size, size), np.float64)
    for drive in progress(drives, desc="pRF model variances", enabled=show_progress, unit="run"):
        drive = np.asarray(drive, np.float32)
        variances.append(grid.candidate_variance(drive))
        power += np.einsum("tyx,tyx->yx", drive, drive, dtype=np.float64)
    variances = np.stack(variances)
    total_variance = variances.sum(axis=0)
    allowed = _supported_candidates(grid, power)
    if not allowed.any():
        raise DataError(f"fit_prf: the drive varies over too few pixels for any candidate pRF "
                        f"(each needs half its weight there; sigma {grid.sigmas[0]:.3g} .. "
                        f"{grid.sigmas[-1]:.3g}): is the stimulus blank or constant?")
    out = {name: np.full(n_voxels, np.nan) for name in ("x", "y", "sigma", "r", "r2", "beta")}
    chunks = range(0, n_voxels, config.chunk_voxels)
    bar = progress(total=n_voxels, desc="pRF fit", enabled=show_progress, unit="voxel")
    for start in chunks:
        stop = min(start + config.chunk_voxels, n_voxels)
        _fit_chunk(grid, drives, signals, start, stop, variances, total_variance, allowed, out)
        bar.update(stop - start)
    bar.close()
    return out


def _supported_candidates(grid, power, min_support=0.5):
    """Candidates with at least ``min_support`` of their in-frame weight on pixels whose drive
    varies, shape (n_sigma, n_y, n_x), bool.

    ``power`` (shape (S, S)) is each pixel's sum over every run of its squared centred drive.
    Pixels that never vary (the black corners of a fisheye-warped frame) carry no evidence; a
    candidate centred there is fitted on the thin tail it has inside the stimulus, and since the
    fit is a correlation, scale-free, such a tail can outscore the voxel's true pRF.
    """
    live = (power > 1e-9 * max(float(power.max()), 1e-300)).astype(np.float32)
    inside = grid.pool(live[None])[0]
    whole = grid.pool(np.ones_like(live)[None])[0]
    return inside >= min_support * whole


def _masked_scores(covariance, variance, allowed):
    """Correlation-like scores ``covariance / sqrt(variance)``, -inf where not ``allowed``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(allowed[None], covariance * _inverse_sqrt(variance)[None], -np.inf)


def _fit_chunk(grid, drives, signals, start, stop, variances, total_variance, allowed, out):
    from .signals import zscore

    size, k, n_runs = grid.size, stop - start, len(drives)
    cross = np.empty((n_runs, k, size, size), np.float32)   # C_r = y_r^T D_r per run
    sum_sq = np.empty((n_runs, k), np.float64)
    for r, (drive, sig) in enumerate(zip(drives, signals)):
        y = zscore(np.asarray(sig[:, start:stop]))
        d = np.asarray(drive, np.float32).reshape(drive.shape[0], size * size)
        cross[r] = (y.T @ d).reshape(k, size, size)
        sum_sq[r] = np.einsum("tv,tv->v", y, y, dtype=np.float64)
    total_cross = cross.sum(axis=0)
    total_sq = sum_sq.sum(axis=0)

    # Fit on all runs: the estimate.
    covariance = grid.pool(total_cross)
    scores = _masked_scores(covariance, total_variance, allowed)
    with np.errstate(divide="ignore", invalid="ignore"):
        best = _argmax_grid(scores)
        picked = (np.arange(k), *best)
        r = scores[picked] / np.sqrt(total_sq)
        beta = covariance[picked] / total_variance[best]
    d_sigma, d_y, d_x = _refine(scores, best)
    step = grid.stride / size
    log_step = np.log(grid.sigmas[1] / grid.sigmas[0]) if len(grid.sigmas) > 1 else 0.0
    top = np.nextafter(0.5, 0.0)
    flat = total_sq <= 0   # voxels without variance (constant or NaN in the data): no estimate
    nan = np.float64(np.nan)
    out["x"][start:stop] = np.where(flat, nan, np.clip(grid.positions[best[2]] + d_x * step, -0.5, top))
    out["y"][start:stop] = np.where(flat, nan, np.clip(grid.positions[best[1]] + d_y * step, -0.5, top))
    out["sigma"][start:stop] = np.where(flat, nan, grid.sigmas[best[0]] * np.exp(d_sigma * log_step))
    out["r"][start:stop] = r
    out["beta"][start:stop] = np.where(flat, nan, beta)

    # Leave one run out: refit on the other runs, predict the held-out run.
    sse = np.zeros(k)
    for held in range(n_runs):
        train_variance = total_variance - variances[held]
        train_cov = grid.pool(total_cross - cross[held])
        with np.errstate(divide="ignore", invalid="ignore"):
            fold_best = _argmax_grid(_masked_scores(train_cov, train_variance, allowed))
            gain = train_cov[(np.arange(k), *fold_best)] / train_variance[fold_best]
        gain = np.nan_to_num(gain)
        held_cov = grid.point_sums(cross[held], fold_best)
        held_var = variances[held][fold_best]
        sse += sum_sq[held] - 2.0 * gain * held_cov + gain ** 2 * held_var
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(total_sq > 0, 1.0 - sse / total_sq, np.nan)
    out["r2"][start:stop] = r2
