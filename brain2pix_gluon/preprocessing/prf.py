"""Population receptive fields (pRFs) estimated from the training data (``brain2pix estimate-rf``).

Brain2Pix needs an RF centre for every voxel (paper section 2.3, eqs. 1-2); most datasets do not
ship them. This module fits, for every voxel, an isotropic Gaussian pRF, linear (Dumoulin &
Wandell 2008) or with compressive spatial summation (CSS; Kay, Winawer, Mezer & Wandell 2013):

    prediction(t) = beta * [HRF * (sum_p g(p; x, y, sigma) drive_p) ** n](t)  + nuisance,

or linear in several image features at once, one Gaussian shared by all of them and a free,
signed weight per feature ``c`` (a linearised encoding model; Naselaris, Kay, Nishimoto & Gallant
2011):

    prediction(t) = sum_c w_c * [HRF * (sum_p g(p; x, y, sigma) feature_c,p)](t)  + nuisance,

where ``drive_p(t)`` is a per-pixel stimulus feature of the frame shown at volume ``t`` on the same
fisheye-warped ``S x S`` frames the network is trained on (the released centres were estimated on
warped frames), ``g`` is a Gaussian at ``(x, y)`` with size ``sigma``, ``n`` the exponent (1 for the
linear model, below 1 for sub-additive summation) and ``HRF`` a canonical double-gamma response
sampled at the TR. The nuisance of each run is its mean and its onset response (the HRF's running
sum, :func:`run_nuisance`): what a run's first seconds hold depends on what was shown before it
(a blank screen before a scan, the preceding part of a movie cut into blocks), which the drive of
the run alone does not predict. Both are projected out of the responses and of every model time
course. (With the mean alone, the onset that the model predicted after an assumed blank, and
that data without it lack, pulled fitted exponents towards 1.)

Drives and models (``PRFConfig.drive``)
--------------------------------------
``"luminance"``: linear model
    Mean of R, G, B of the warped frame.
``"features"`` (default): multi-feature linear model
    Six maps per frame (:data:`FEATURES`, computed by :mod:`.light` on the linearised warped
    frame): local contrast energy of the luminance ``L + M`` (Kay et al. 2013), the cone-opponent
    contrasts ``(L - M) / (L + M)`` and ``(S - (L + M) / 2) / (L + M)`` (signed: a voxel's hue
    preference, Brouwer & Heeger 2009), their magnitudes (colour contrast of either sign, to which
    V1 responds strongly; Engel, Zhang & Wandell 1997) and ``L + M`` itself. Each candidate
    Gaussian pools every feature; the voxel is regressed on the pooled, HRF-convolved features
    with one weight per feature (returned as ``weights``), and the candidate that explains most
    variance wins. The default is the drive with the highest cross-validated R^2 on the
    package's simulated dataset, whose voxels mix compressed contrast energy, colour-opponent
    signals and luminance over one pRF (docs/method.md, section 9; docs/measurements.md).
``"contrast"``: compressive (CSS) model
    Local RMS contrast (contrast energy) of the light: the relative luminance (Rec. 709 weights)
    of the linearised frame, minus its Gaussian blur (a centre-surround band-pass), squared,
    blurred again, square-rooted. The blurs are normalised over the warp's valid field, so the
    edge between the warped image and its black corners, which is not in the video, adds no
    contrast. The pooled contrast is raised to the exponent ``n``, searched over
    ``PRFConfig.css_exponents``; ``css_exponents=(1.0,)`` gives the linear contrast model. Early
    visual cortex responds to contrast rather than to mean luminance; on real recordings (e.g.
    vim-2) compare the cross-validated R^2 of both drives.

Candidates are only those with at least half their in-frame weight on pixels where the drive
varies: a Gaussian centred in the black corners would be fitted on the thin tail it has inside the
image, and a correlation, which ignores scale, can prefer such a tail to the voxel's true pRF.

Coordinates
-----------
``x`` is horizontal (column of the upright frame, -0.5 left ... +0.5 right) and ``y`` vertical (row,
-0.5 top ... +0.5 bottom), pixel ``k`` having its centre at ``(k + 0.5) / S - 0.5``; ``sigma`` is in
the same image units. These are the ``col`` and ``row`` centres that ``prepare`` reads. The CSS
model's pRF size in the sense of Kay et al. (the spread of its response to a point) is
``sigma / sqrt(n)``.

How the fit stays fast
----------------------
Responses ``y`` are taken per run with the nuisance projected out and scaled to unit variance.
Every candidate is scored by its correlation with ``y`` over all runs; its gain is the
least-squares scale.

*Linear model.* The prediction is linear in the drive, so with the HRF-convolved, nuisance-free
drive ``D`` (time x pixels) the covariance of every candidate with ``y`` is ``g^T (D^T y)`` and
its variance ``g^T (D^T D) g`` does not depend on the voxel. One pass over the runs gives
``C = D^T y`` for a chunk of voxels (one matrix product per run); pooling ``C`` with the separable
Gaussian profiles (two matrix products per sigma) gives the covariance of *every* grid candidate
(all positions x all sigmas) at once, without ever holding their time courses. Memory:
``n_runs x chunk x S^2`` floats for the per-run ``C``.

*CSS model.* The power comes after the pooling, so every candidate's time course (pooled drive,
power, HRF) is computed once per run and exponent and written to disk (``work_dir``); a chunk's
covariances with all of them are one matrix product per run and exponent. Memory:
``n_runs x chunk x n_candidates`` floats (``PRFConfig.chunk_memory_mb`` caps the chunk); disk:
``n_volumes x n_exponents x n_candidates`` floats.

*Multi-feature model.* Still linear in every feature's pixels: each feature's cross-product map
``D_c^T y`` is pooled as in the linear model, giving ``b`` (k features per candidate), and the
``k x k`` Gram matrix ``G`` of every candidate's pooled feature time courses (one pooling of
every run's design per feature, voxel-independent) turns them into the explained sum of squares
``b^T G^-1 b`` and the weights ``G^-1 b`` of all candidates at once (``G`` is inverted per
candidate after scaling to unit diagonal, a pseudo-inverse, so that a feature that never varies,
e.g. colour in grey stimuli, drops out). The grid search maximises the multiple correlation
``sqrt(b^T G^-1 b / y^T y)``, the analogue of the one-feature correlation.

Refinement fits a parabola through the correlations at the best grid point and its neighbours
along x and y, and for the CSS model a quadratic surface over (log n, log sigma) (the exponent and
the size trade off: a smaller pRF with less compression predicts much the same), else a parabola
along log sigma.

Cross-validation (leave one run out): for each held-out run the grid search is repeated on the
other runs (their covariances and variances are the totals minus the held-out run's), the gain
``beta`` is the least-squares scale on those runs, and the held-out residuals give
``R^2 = 1 - sum SSE / sum SS`` pooled over folds. It is the R^2 of the grid fit (before the
sub-grid refinement), so it is slightly conservative. The multi-feature model leaves out
consecutive runs in at most 5 folds (:func:`feature_folds`; one run per fold up to 5 runs), and
each fold refits search and weights on the rest: every fold pools every feature's maps again,
and 20 folds of six features would not fit 10,000 x 10,000 in the time goal.
"""

import os

import numpy as np

from ..config import PRFConfig
from ..errors import DataError, check_array, check_choice
from ..utils import progress
from .hrf import double_gamma_hrf, hrf_convolve, onset_response

__all__ = ["DRIVES", "FEATURES", "pixel_coordinates", "stimulus_drive", "image_features",
           "model_drive", "run_nuisance", "PRFGrid", "feature_folds", "fit_prf"]

DRIVES = ("luminance", "contrast", "features")
# the image features of the multi-feature drive, in the order of its channel axis
FEATURES = ("contrast", "red_green", "blue_yellow", "red_green_energy", "blue_yellow_energy",
            "luminance")
_REC709_LUMINANCE = np.array([0.2126, 0.7152, 0.0722], np.float32)


def pixel_coordinates(size):
    """Centres of the pixels of an ``size``-pixel axis in image units, shape (size,)."""
    return (np.arange(size) + 0.5) / size - 0.5


def stimulus_drive(frames, kind, max_ratio, fisheye=True, contrast_sigma=1.0):
    """Per-pixel stimulus drive of RGB frames, on the fisheye-warped frames the model trains on.

    Parameters
    ----------
    frames : ndarray, shape (n_frames, S, S, 3), uint8
    kind : {"luminance", "contrast", "features"}
        See the module docstring.
    max_ratio : float
        Fisheye warp strength (``data.max_ratio``).
    fisheye : bool
        Warp the frames first (``data.fisheye``).
    contrast_sigma : float
        Width in pixels of the blur of the ``"contrast"`` drive.

    Returns
    -------
    ndarray, shape (n_frames, S, S), float32; for ``"features"`` shape (n_frames, 6, S, S), the
        channels of :data:`FEATURES`
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
    if kind == "features":
        return image_features(rgb)
    from scipy import ndimage

    # contrast is a property of light, not of the gamma-encoded pixel values: relative luminance
    # (Rec. 709 weights) of the linearised frame (sRGB decoded with a 2.2 power)
    # (in place: ``rgb`` is this function's own array, and a run can hold gigabytes of it)
    np.clip(rgb, 0.0, 1.0, out=rgb)
    np.power(rgb, np.float32(2.2), out=rgb)
    luminance = rgb @ _REC709_LUMINANCE

    from .retina import fisheye_valid_mask

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


def image_features(rgb):
    """The channels of the multi-feature drive (:data:`FEATURES`) of sRGB frames.

    Contrast energy of the luminance ``L + M``, the cone contrasts ``(L - M) / (L + M)`` and
    ``(S - (L + M) / 2) / (L + M)``, their absolute values, and ``L + M`` itself, all of the
    linearised frame (:mod:`brain2pix_gluon.preprocessing.light`).

    Parameters
    ----------
    rgb : ndarray, shape (n_frames, S, S, 3)
        sRGB in [0, 1] (already warped where the fit works on warped frames).

    Returns
    -------
    ndarray, shape (n_frames, 6, S, S), float32
    """
    from .light import cone_channels, contrast_energy

    out = np.empty((rgb.shape[0], len(FEATURES)) + rgb.shape[1:3], np.float32)
    for start in range(0, rgb.shape[0], 256):      # bounded temporaries for long runs
        lum, red_green, blue_yellow = cone_channels(rgb[start:start + 256])
        block = out[start:start + 256]
        block[:, 0] = contrast_energy(lum)
        block[:, 1] = red_green
        block[:, 2] = blue_yellow
        np.abs(red_green, out=block[:, 3])
        np.abs(blue_yellow, out=block[:, 4])
        block[:, 5] = lum
    return out


def model_drive(frames, n_volumes, config=None, max_ratio=None, fisheye=True):
    """The stimulus drive of one run at the volumes the fit uses (one frame per volume).

    Frame ``t`` is the frame shown during volume ``t`` (one frame per TR from the run's start).
    Only the first ``min(n_frames, n_volumes)`` volumes are used: frames after the last volume
    were never measured, and volumes after the last frame saw no known stimulus. The HRF, the
    compressive nonlinearity and the run's nuisance are applied by :func:`fit_prf`.

    Parameters
    ----------
    frames : ndarray, shape (n_frames, S, S, 3), uint8
    n_volumes : int
        Volumes of the run.
    config : PRFConfig, optional
        ``drive`` and ``contrast_sigma``.
    max_ratio : float, optional
        Fisheye warp strength (default ``data.max_ratio``'s default).
    fisheye : bool

    Returns
    -------
    ndarray, shape (min(n_frames, n_volumes), S, S), float32; for ``drive="features"`` shape
        (min(n_frames, n_volumes), 6, S, S)
    """
    from ..config import DataConfig

    config = config or PRFConfig()
    max_ratio = DataConfig.max_ratio if max_ratio is None else max_ratio
    n_use = min(int(n_volumes), len(frames))
    return stimulus_drive(frames[:n_use], config.drive, max_ratio, fisheye, config.contrast_sigma)


def run_nuisance(n_volumes, hrf):
    """What a run's responses hold besides the pRF's: an orthonormal basis of its mean and of
    its onset response (:func:`~brain2pix_gluon.preprocessing.hrf.onset_response`).

    Both are projected out of every run's responses and of every model time course, so that
    neither the run's baseline nor what was on screen before the run (a blank before a scan, the
    previous part of a movie cut into blocks) is mistaken for a pRF's response.

    Parameters
    ----------
    n_volumes : int
    hrf : ndarray, shape (n_taps,)

    Returns
    -------
    ndarray, shape (n_volumes, 2) (shape (n_volumes, 1) when the run is too short for the
    onset to differ from the mean), float64; the first column is the constant
    """
    basis = np.stack([np.ones(int(n_volumes)), onset_response(hrf, n_volumes)], axis=1)
    q, upper = np.linalg.qr(basis)
    keep = np.abs(np.diag(upper)) > 1e-8 * max(np.abs(upper[0, 0]), 1e-300)
    return q[:, keep]


def _project_out(values, basis):
    """``values`` minus its projection on the orthonormal ``basis`` (time on axis 0), in place."""
    flat = values.reshape(values.shape[0], -1)
    basis = basis.astype(flat.dtype)
    flat -= basis @ (basis.T @ flat)
    return values


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
        self._stacked = np.ascontiguousarray(self.profiles.reshape(-1, size))
        self._profiles_t = np.ascontiguousarray(self.profiles.transpose(0, 2, 1))

    def profile(self, centres, sigma):
        """Gaussian profiles over the pixels of one axis, shape (n_centres, S), float32."""
        coords = pixel_coordinates(self.size)
        centres = np.atleast_1d(np.asarray(centres, float))
        sigma = np.broadcast_to(np.asarray(sigma, float), centres.shape)
        out = np.exp(-(coords[None, :] - centres[:, None]) ** 2 / (2.0 * sigma[:, None] ** 2))
        out = out.astype(np.float32)
        # weights far out in a narrow Gaussian's tail make float32 subnormals (themselves or in
        # their products), each many times slower to compute with; below 1e-10 of the peak they
        # are set to 0, which changes a pooled sum by less than float32 resolves
        out[out < 1e-10] = 0.0
        return out

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
        # per map, all sigmas' y profiles in one product, then per map and sigma the x profiles:
        # batched products whose results are already in the output's layout (the earlier wide
        # products needed two transposed copies of arrays this large, which took longer than
        # the products themselves)
        over_y = np.matmul(self._stacked, maps)                               # (k, n_s*n_y, x)
        return np.matmul(over_y.reshape(k, n_s, n, s), self._profiles_t)      # (k, n_s, n_y, n_x)

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

    def candidate_gram(self, design, block=128):
        """Cross-products over time of the candidate time courses of several channels of one run.

        Parameters
        ----------
        design : ndarray, shape (n_volumes, k, S, S)
            Design drive of ``k`` channels (HRF-convolved, nuisance projected out).

        Returns
        -------
        ndarray, shape (n_candidates, k, k), float64
            Per grid candidate (flattened (sigma, y, x) order) the Gram matrix
            ``sum_t p_c(t) p_d(t)`` of the channels' pooled time courses ``p``.
        """
        n_t, k = design.shape[:2]
        n_grid = int(np.prod(self.shape))
        total = np.zeros((n_grid, k, k), np.float64)
        for start in range(0, n_t, block):
            maps = np.asarray(design[start:start + block], np.float32)
            pooled = self.pool(maps.reshape((-1,) + maps.shape[2:])).reshape(len(maps), k, n_grid)
            for c in range(k):
                for d in range(c, k):
                    value = np.einsum("tg,tg->g", pooled[:, c], pooled[:, d])   # float32 per block
                    total[:, c, d] += value
                    if d != c:
                        total[:, d, c] += value
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
    """Per-voxel index (one array per grid axis) of the largest score; scores shape (k, ...)."""
    flat = scores.reshape(scores.shape[0], -1).argmax(axis=1)
    return np.unravel_index(flat, scores.shape[1:])


def _inverse_sqrt(variance):
    """1 / sqrt(variance), 0 where a candidate never varies (no NaN reaches the argmax)."""
    with np.errstate(divide="ignore"):
        return np.where(variance > 0, 1.0 / np.sqrt(variance), 0.0).astype(np.float32)


def _parabola_offset(lower, centre, upper):
    """Vertex of the parabola through (-1, lower), (0, centre), (1, upper), clipped to +-0.5;
    0 where a neighbour is not a candidate (-inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        curvature = lower - 2.0 * centre + upper
        usable = (curvature < 0) & np.isfinite(lower) & np.isfinite(upper)
        offset = np.where(usable, 0.5 * (lower - upper) / curvature, 0.0)
    return np.clip(np.nan_to_num(offset), -0.5, 0.5)


def _refine(scores, index):
    """Sub-grid offsets along every grid axis from the scores around each voxel's best candidate.

    Parameters
    ----------
    scores : ndarray, shape (k, n_1, ..., n_d)
    index : tuple of d ndarray, each shape (k,)

    Returns
    -------
    list of d ndarray, each shape (k,), in [-0.5, 0.5]
    """
    voxels = np.arange(scores.shape[0])
    offsets = []
    for axis in range(scores.ndim - 1):
        n = scores.shape[axis + 1]
        inner = (index[axis] > 0) & (index[axis] < n - 1)
        lo, hi = list(index), list(index)
        lo[axis] = np.clip(index[axis] - 1, 0, n - 1)
        hi[axis] = np.clip(index[axis] + 1, 0, n - 1)
        centre = scores[(voxels, *index)]
        lower = scores[(voxels, *lo)]
        upper = scores[(voxels, *hi)]
        offsets.append(np.where(inner, _parabola_offset(lower, centre, upper), 0.0))
    return offsets


def _refine_jointly(scores, index, axes=(0, 1)):
    """Sub-grid offsets along two grid axes at once, from the quadratic surface through the 3 x 3
    scores around each voxel's best candidate (used for the exponent and the size, which trade
    off against each other: a smaller pRF with less compression predicts much the same).

    Returns
    -------
    tuple of 2 ndarray, each shape (k,), in [-0.5, 0.5]; 0 where the best candidate is on the
    grid's edge along either axis, a neighbour is no candidate, or the surface has no maximum
    """
    k = scores.shape[0]
    voxels = np.arange(k)
    a, b = axes
    n_a, n_b = scores.shape[a + 1], scores.shape[b + 1]
    inner = (index[a] > 0) & (index[a] < n_a - 1) & (index[b] > 0) & (index[b] < n_b - 1)
    du, dv = np.meshgrid([-1, 0, 1], [-1, 0, 1], indexing="ij")
    du, dv = du.ravel(), dv.ravel()
    values = np.empty((k, 9))
    for j in range(9):
        idx = list(index)
        idx[a] = np.clip(index[a] + du[j], 0, n_a - 1)
        idx[b] = np.clip(index[b] + dv[j], 0, n_b - 1)
        values[:, j] = scores[(voxels, *idx)]
    usable = inner & np.isfinite(values).all(axis=1)
    values = np.where(usable[:, None], values, 0.0)
    # least squares: f = c0 + c1 u + c2 v + c3 u^2 + c4 v^2 + c5 u v over the 9 points
    design = np.stack([np.ones(9), du, dv, du ** 2, dv ** 2, du * dv], axis=1)
    coef = values @ np.linalg.pinv(design).T                      # (k, 6)
    h_uu, h_vv, h_uv = 2 * coef[:, 3], 2 * coef[:, 4], coef[:, 5]
    det = h_uu * h_vv - h_uv ** 2
    maximum = usable & (h_uu < 0) & (det > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(maximum, (-coef[:, 1] * h_vv + coef[:, 2] * h_uv) / det, 0.0)
        v = np.where(maximum, (-coef[:, 2] * h_uu + coef[:, 1] * h_uv) / det, 0.0)
    return np.clip(np.nan_to_num(u), -0.5, 0.5), np.clip(np.nan_to_num(v), -0.5, 0.5)


def _check_runs(drives, signals):
    """Frame size S and voxel count of matching drive and signal runs (DataError otherwise)."""
    if len(drives) != len(signals):
        raise DataError(f"fit_prf: got {len(drives)} drive runs but {len(signals)} signal runs")
    if len(drives) < 2:
        raise DataError(f"fit_prf: leave-one-run-out cross-validation needs at least 2 runs, "
                        f"got {len(drives)}")
    size = n_voxels = None
    channels = drives[0].ndim == 4
    expected = "(n_volumes, k, S, S)" if channels else "(n_volumes, S, S)"
    for r, (drive, sig) in enumerate(zip(drives, signals)):
        if (drive.ndim != (4 if channels else 3) or drive.shape[-1] != drive.shape[-2]
                or (channels and drive.shape[1] != drives[0].shape[1])):
            raise DataError(f"drive of run {r}: expected shape {expected} like run 0's, got "
                            f"{drive.shape}")
        if sig.ndim != 2 or sig.shape[0] != drive.shape[0]:
            raise DataError(f"signals of run {r}: expected shape ({drive.shape[0]}, n_voxels) to "
                            f"match its drive, got {sig.shape}")
        if size is None:
            size, n_voxels = drive.shape[-1], sig.shape[1]
        if drive.shape[-1] != size or sig.shape[1] != n_voxels:
            raise DataError(f"run {r}: drive {drive.shape} / signals {sig.shape} disagree with run 0 "
                            f"(S = {size}, {n_voxels} voxels)")
    return size, n_voxels


def is_compressive(config):
    """Whether ``config`` asks for the compressive (CSS) model rather than the linear one."""
    return config.drive == "contrast" and tuple(config.css_exponents) != (1.0,)


def fit_prf(drives, signals, tr, config=None, work_dir=None, show_progress=False):
    """Fit a Gaussian pRF to every voxel: linear, compressive for the contrast drive, or linear
    in several features for the multi-feature drive (see the module docstring).

    Parameters
    ----------
    drives : sequence of array_like, each shape (n_volumes_r, S, S)
        Stimulus drive of each run (:func:`model_drive`); memory maps are read lazily. For
        ``config.drive == "features"`` each of shape (n_volumes_r, k, S, S), one map per feature.
    signals : sequence of array_like, each shape (n_volumes_r, n_voxels)
        Responses of each run, same volumes as the drive; each run's mean and onset response
        (:func:`run_nuisance`) are projected out and the rest is scaled to unit variance here.
    tr : float
        Seconds per volume (the HRF's sampling).
    config : PRFConfig, optional
    work_dir : str, optional
        Folder for the model time courses of every run (memory-mapped files, removed at the end;
        default: the system's temporary folder). The compressive model writes
        ``n_volumes x n_exponents x n_candidates`` floats there (about 3 GB for 10,000 volumes);
        the linear models their design drives (``n_volumes x k x S^2`` floats: 2.2 GB for 10,000
        volumes of the six features at S = 96).
    show_progress : bool

    Returns
    -------
    dict of str -> ndarray, each shape (n_voxels,)
        ``x``, ``y`` (centres, image units, x = column, y = row), ``sigma`` (the Gaussian's SD),
        ``exponent`` (``n``; 1 for the linear models), ``r`` (in-sample correlation of the best
        grid candidate; multiple correlation for the multi-feature model), ``r2``
        (cross-validated R^2: leave one run out; multi-feature model: :func:`feature_folds`) and
        ``beta`` (gain of the fit on all runs; NaN for the multi-feature model); NaN everywhere
        for voxels without variance. The multi-feature model adds ``weights``, shape
        (n_voxels, k): the weight of each feature (in the drive's order, :data:`FEATURES`).
    """
    import shutil
    import tempfile

    config = config or PRFConfig()
    size, n_voxels = _check_runs(drives, signals)
    features = config.drive == "features"
    if features != (drives[0].ndim == 4):
        raise DataError(f"fit_prf: prf.drive={config.drive} expects drives of shape "
                        + ("(n_volumes, k, S, S) (one map per image feature)" if features else
                           "(n_volumes, S, S)") + f", got {drives[0].shape} (from model_drive "
                        f"with another prf.drive?)")
    if not (isinstance(tr, (int, float)) and tr > 0):
        raise DataError(f"fit_prf: tr must be a positive number of seconds, got {tr!r}")
    grid = PRFGrid(size, config)
    hrf = double_gamma_hrf(tr)
    folder = tempfile.mkdtemp(prefix="prf-fit-", dir=work_dir)
    try:
        if features:
            return _fit_features(grid, drives, signals, hrf, config, folder, show_progress)
        if is_compressive(config):
            return _fit_compressive(grid, drives, signals, hrf, config, folder, show_progress)
        return _fit_linear(grid, drives, signals, hrf, config, folder, show_progress)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _no_candidate_error(grid):
    return DataError(f"fit_prf: the drive varies over too few pixels for any candidate pRF "
                     f"(each needs half its weight there; sigma {grid.sigmas[0]:.3g} .. "
                     f"{grid.sigmas[-1]:.3g}): is the stimulus blank or constant?")


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


def _chunk_signals(signals, bases, start, stop):
    """Each run's responses of voxels ``start:stop``, nuisance projected out, unit variance.

    Returns
    -------
    ys : list of ndarray, each shape (n_volumes_r, k), float32
    sum_sq : ndarray, shape (n_runs, k), float64
        Sum of squares of each run (its number of volumes; 0 for a voxel without variance).
    """
    ys, sum_sq = [], []
    for sig, basis in zip(signals, bases):
        y = np.asarray(sig[:, start:stop], dtype=np.float64)
        y = _project_out(np.array(y), basis)
        with np.errstate(invalid="ignore", divide="ignore"):
            y /= np.sqrt(np.mean(y * y, axis=0))
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
        ys.append(y.astype(np.float32))
        sum_sq.append(np.einsum("tv,tv->v", y, y))
    return ys, np.stack(sum_sq)


def _store(out, start, stop, grid, best, offsets, flat, r, beta, exponent):
    """Write one chunk's estimates: grid index ``best`` = (sigma, y, x) plus sub-grid offsets."""
    i_s, i_y, i_x = best
    d_s, d_y, d_x = offsets
    step = grid.stride / grid.size
    log_step = np.log(grid.sigmas[1] / grid.sigmas[0]) if len(grid.sigmas) > 1 else 0.0
    # the largest float32 below 0.5: prepared files store centres as float32, and anything closer
    # to 0.5 would round to it there and leave the range [-0.5, 0.5)
    top = float(np.nextafter(np.float32(0.5), np.float32(0.0)))
    nan = np.float64(np.nan)
    out["x"][start:stop] = np.where(flat, nan, np.clip(grid.positions[i_x] + d_x * step, -0.5, top))
    out["y"][start:stop] = np.where(flat, nan, np.clip(grid.positions[i_y] + d_y * step, -0.5, top))
    out["sigma"][start:stop] = np.where(flat, nan, grid.sigmas[i_s] * np.exp(d_s * log_step))
    out["exponent"][start:stop] = np.where(flat, nan, exponent)
    out["r"][start:stop] = np.where(flat, nan, r)
    out["beta"][start:stop] = np.where(flat, nan, beta)


def _new_estimates(n_voxels):
    return {name: np.full(n_voxels, np.nan)
            for name in ("x", "y", "sigma", "exponent", "r", "r2", "beta")}


def _fit_linear(grid, drives, signals, hrf, config, folder, show_progress):
    """The linear pRF: the HRF-convolved drive is linear in the pixels, so every candidate's
    covariance with a voxel is a Gaussian pooling of the voxel's cross-product map."""
    size = grid.size
    n_voxels = signals[0].shape[1]
    bases = [run_nuisance(d.shape[0], hrf) for d in drives]
    # one pass over every run: its design drive (HRF, nuisance out) to disk, the candidates'
    # variances and each pixel's power
    designs, variances, power = [], [], np.zeros((size, size), np.float64)
    for r, (drive, basis) in enumerate(progress(list(zip(drives, bases)), desc="pRF design",
                                                enabled=show_progress, unit="run")):
        design = _project_out(hrf_convolve(np.asarray(drive, np.float32), hrf), basis)
        variances.append(grid.candidate_variance(design))
        power += np.einsum("tyx,tyx->yx", design, design, dtype=np.float64)
        path = os.path.join(folder, f"design_{r}.npy")
        np.save(path, design)
        del design
        designs.append(np.load(path, mmap_mode="r"))
    variances = np.stack(variances)
    total_variance = variances.sum(axis=0)
    allowed = _supported_candidates(grid, power)
    if not allowed.any():
        raise _no_candidate_error(grid)
    out = _new_estimates(n_voxels)
    bar = progress(total=n_voxels, desc="pRF fit", enabled=show_progress, unit="voxel")
    for start in range(0, n_voxels, config.chunk_voxels):
        stop = min(start + config.chunk_voxels, n_voxels)
        _fit_chunk_linear(grid, designs, signals, bases, start, stop, variances, total_variance,
                          allowed, out)
        bar.update(stop - start)
    bar.close()
    return out


def _fit_chunk_linear(grid, designs, signals, bases, start, stop, variances, total_variance,
                      allowed, out):
    size, k, n_runs = grid.size, stop - start, len(designs)
    ys, sum_sq = _chunk_signals(signals, bases, start, stop)
    cross = np.empty((n_runs, k, size, size), np.float32)   # C_r = y_r^T D_r per run
    for r, (design, y) in enumerate(zip(designs, ys)):
        d = np.asarray(design, np.float32).reshape(design.shape[0], size * size)
        cross[r] = (y.T @ d).reshape(k, size, size)
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
    flat = total_sq <= 0   # voxels without variance (constant or NaN in the data): no estimate
    _store(out, start, stop, grid, best, _refine(scores, best), flat, r, beta, 1.0)

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
        out["r2"][start:stop] = np.where(total_sq > 0, 1.0 - sse / total_sq, np.nan)


def _fit_compressive(grid, drives, signals, hrf, config, folder, show_progress):
    """The compressive spatial summation (CSS) pRF: ``(Gaussian . drive) ** n`` before the HRF.

    The nonlinearity comes after the pooling, so the covariances cannot be pooled from a
    cross-product map: every candidate's time course (pool, power, HRF, centred; the responses
    are already free of the rest of the nuisance) is computed once per run and written to disk,
    and a voxel chunk's covariances with all of them are one matrix product per run and exponent.
    """
    n_voxels = signals[0].shape[1]
    n_runs = len(drives)
    exponents = np.asarray(sorted(config.css_exponents), np.float64)
    bases = [run_nuisance(d.shape[0], hrf) for d in drives]
    # pass 1: where the drive varies (the candidate rule), and that it is a non-negative energy
    power = np.zeros((grid.size, grid.size), np.float64)
    for r, drive in enumerate(drives):
        drive = np.asarray(drive, np.float32)
        if drive.size and float(drive.min()) < 0:
            raise DataError(f"fit_prf: the compressive model (prf.drive=contrast, "
                            f"prf.css_exponents={tuple(config.css_exponents)}) raises the pooled "
                            f"drive to a power and needs a non-negative drive (contrast energy); "
                            f"run {r} has values down to {float(drive.min()):.3g}")
        centred = drive - drive.mean(axis=0, dtype=np.float64).astype(np.float32)
        power += np.einsum("tyx,tyx->yx", centred, centred, dtype=np.float64)
    allowed = _supported_candidates(grid, power)
    if not allowed.any():
        raise _no_candidate_error(grid)
    candidates = np.flatnonzero(allowed.ravel())
    # pass 2: every candidate's model time course, per run and exponent, to disk
    courses, variances = [], np.empty((n_runs, len(exponents), len(candidates)), np.float64)
    for r, (drive, basis) in enumerate(progress(list(zip(drives, bases)), desc="pRF model time "
                                                "courses", enabled=show_progress, unit="run")):
        pooled = _pooled_candidates(grid, drive, candidates)
        with np.errstate(divide="ignore"):
            log_pooled = np.log(pooled)       # a power as exp(n log p): several times faster
        path = os.path.join(folder, f"courses_{r}.npy")
        store = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                          shape=(len(exponents),) + pooled.shape)
        for e, n in enumerate(exponents):
            course = pooled if n == 1.0 else np.exp(log_pooled * np.float32(n))
            store[e] = hrf_convolve(course, hrf)
            variances[r, e] = _variance_without_nuisance(store[e], basis)
        store.flush()
        del store, pooled, log_pooled, course
        courses.append(np.load(path, mmap_mode="r"))
    # a chunk holds every run's covariances with every candidate of one exponent
    per_voxel = n_runs * len(candidates) * 4
    chunk = int(max(1, min(config.chunk_voxels, config.chunk_memory_mb * 2 ** 20 // per_voxel)))
    out = _new_estimates(n_voxels)
    bar = progress(total=n_voxels, desc="pRF fit", enabled=show_progress, unit="voxel")
    for start in range(0, n_voxels, chunk):
        stop = min(start + chunk, n_voxels)
        _fit_chunk_compressive(grid, courses, variances, candidates, exponents, signals, bases,
                               start, stop, out)
        bar.update(stop - start)
    bar.close()
    return out


def _variance_without_nuisance(courses, basis):
    """Sum of squares of time courses once the run's nuisance is projected out; the courses are
    centred in place (the rest of the projection need not be applied: the responses they are
    correlated with are already free of it).

    Parameters
    ----------
    courses : ndarray, shape (n_volumes, n), float32
    basis : ndarray, shape (n_volumes, m), orthonormal, its first column constant

    Returns
    -------
    ndarray, shape (n,), float64
    """
    courses -= courses.mean(axis=0, dtype=np.float64).astype(np.float32)
    total = np.einsum("tc,tc->c", courses, courses, dtype=np.float64)
    along = basis[:, 1:].T.astype(np.float32) @ courses                  # (m - 1, n)
    return total - np.einsum("mc,mc->c", along, along, dtype=np.float64)


def _pooled_candidates(grid, drive, candidates, block=256):
    """Gaussian-weighted sums of one run's drive at the given candidates.

    Returns
    -------
    ndarray, shape (n_volumes, n_candidates), float32, non-negative for a non-negative drive
    """
    n = drive.shape[0]
    out = np.empty((n, len(candidates)), np.float32)
    for start in range(0, n, block):
        maps = np.asarray(drive[start:start + block], np.float32)
        pooled = grid.pool(maps).reshape(len(maps), -1)
        np.take(pooled, candidates, axis=1, out=out[start:start + len(maps)])
    return np.maximum(out, 0.0, out=out)   # float rounding must not make a power NaN


def _fit_chunk_compressive(grid, courses, variances, candidates, exponents, signals, bases,
                           start, stop, out):
    k, n_runs, n_exp = stop - start, len(courses), len(exponents)
    voxels = np.arange(k)
    ys, sum_sq = _chunk_signals(signals, bases, start, stop)
    total_sq = sum_sq.sum(axis=0)
    n_grid = int(np.prod(grid.shape))
    scores = np.full((k, n_exp, n_grid), -np.inf, np.float32)   # fit on all runs, every candidate
    # per held-out run: the best training score so far (over exponents) and what it predicts
    fold_score = np.full((n_runs, k), -np.inf)
    fold_gain = np.zeros((n_runs, k))
    held_cov = np.zeros((n_runs, k))
    held_var = np.zeros((n_runs, k))
    cross = np.empty((n_runs, k, len(candidates)), np.float32)
    train = np.empty((k, len(candidates)), np.float32)
    for e in range(n_exp):
        for r in range(n_runs):
            np.matmul(ys[r].T, courses[r][e], out=cross[r])
        total = cross.sum(axis=0)
        total_var = variances[:, e].sum(axis=0)
        scores[:, e, candidates] = total * _inverse_sqrt(total_var)[None]
        for held in range(n_runs):
            train_var = total_var - variances[held, e]
            np.subtract(total, cross[held], out=train)
            train *= _inverse_sqrt(train_var)[None]
            best = train.argmax(axis=1)
            score = train[voxels, best].astype(np.float64)
            better = score > fold_score[held]
            with np.errstate(divide="ignore", invalid="ignore"):
                gain = np.nan_to_num(score / np.sqrt(train_var[best]))
            fold_score[held] = np.where(better, score, fold_score[held])
            fold_gain[held] = np.where(better, gain, fold_gain[held])
            held_cov[held] = np.where(better, cross[held][voxels, best], held_cov[held])
            held_var[held] = np.where(better, variances[held, e][best], held_var[held])
    del cross, train
    scores = scores.reshape((k, n_exp) + grid.shape)
    best = _argmax_grid(scores)                                  # (exponent, sigma, y, x)
    offsets = _refine(scores, best)
    offsets[0], offsets[1] = _refine_jointly(scores, best, axes=(0, 1))
    peak = scores[(voxels, *best)].astype(np.float64)
    total_var = variances.sum(axis=0)                            # (exponent, candidate)
    flat_index = np.ravel_multi_index(best[1:], grid.shape)
    position = np.searchsorted(candidates, flat_index)
    picked_var = total_var[best[0], position]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = peak / np.sqrt(total_sq)
        beta = peak / np.sqrt(picked_var)
    log_n = np.interp(best[0] + offsets[0], np.arange(n_exp), np.log(exponents))
    flat = total_sq <= 0
    _store(out, start, stop, grid, best[1:], offsets[1:], flat, r, beta, np.exp(log_n))
    sse = (sum_sq - 2.0 * fold_gain * held_cov + fold_gain ** 2 * held_var).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["r2"][start:stop] = np.where(total_sq > 0, 1.0 - sse / total_sq, np.nan)


def _fit_features(grid, drives, signals, hrf, config, folder, show_progress):
    """The multi-feature linear pRF: one Gaussian, a free signed weight per image feature.

    Per run, every channel's design drive (HRF, nuisance out) goes to disk and every candidate's
    ``k x k`` Gram matrix of pooled channel time courses is accumulated; a voxel chunk's
    cross-product maps (one per run and channel) are pooled to every candidate, and each
    candidate's least-squares fit is a ``k x k`` solve, done for all candidates at once.
    """
    size = grid.size
    n_voxels, n_runs, n_ch = signals[0].shape[1], len(drives), drives[0].shape[1]
    n_grid = int(np.prod(grid.shape))
    bases = [run_nuisance(d.shape[0], hrf) for d in drives]
    designs, power = [], np.zeros((n_ch, size, size), np.float64)
    grams = np.empty((n_runs, n_grid, n_ch, n_ch), np.float64)
    for r, (drive, basis) in enumerate(progress(list(zip(drives, bases)), desc="pRF design",
                                                enabled=show_progress, unit="run")):
        design = _project_out(hrf_convolve(np.asarray(drive, np.float32), hrf), basis)
        grams[r] = grid.candidate_gram(design)
        power += np.einsum("tcyx,tcyx->cyx", design, design, dtype=np.float64)
        path = os.path.join(folder, f"design_{r}.npy")
        np.save(path, design)
        del design
        designs.append(np.load(path, mmap_mode="r"))
    total_gram = grams.sum(axis=0)
    folds = feature_folds(n_runs)
    fold_grams = np.stack([grams[runs].sum(axis=0) for runs in folds])
    del grams
    # a pixel varies if any feature does (each feature's power relative to its largest)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.nan_to_num(power / power.max(axis=(1, 2), keepdims=True))
    allowed = _supported_candidates(grid, relative.sum(axis=0)).ravel()
    if not allowed.any():
        raise _no_candidate_error(grid)
    # a chunk holds every run's cross-product maps and a few arrays of all candidates' sums
    per_voxel = n_ch * 4 * (len(folds) * size * size + 8 * n_grid)
    chunk = int(max(1, min(config.chunk_voxels, config.chunk_memory_mb * 2 ** 20 // per_voxel)))
    out = _new_estimates(n_voxels)
    out["weights"] = np.full((n_voxels, n_ch), np.nan)
    inverse = _gram_inverse(total_gram)
    fold_inverse = [_gram_inverse(total_gram - g) for g in fold_grams]
    bar = progress(total=n_voxels, desc="pRF fit", enabled=show_progress, unit="voxel")
    for start in range(0, n_voxels, chunk):
        stop = min(start + chunk, n_voxels)
        _fit_chunk_features(grid, designs, signals, bases, start, stop, folds, fold_grams,
                            inverse, fold_inverse, allowed, out)
        bar.update(stop - start)
    bar.close()
    return out


def feature_folds(n_runs, max_folds=5):
    """The cross-validation folds of the multi-feature fit: consecutive runs in at most
    ``max_folds`` groups, one held out at a time (leave one run out for up to 5 runs).

    Every fold pools each feature's cross-product maps to every candidate, the bulk of the fit's
    work; at most 5 folds keep 10,000 volumes in runs of 500 (20 runs) within the time goal.

    Returns
    -------
    list of ndarray of int
    """
    return [np.asarray(f) for f in np.array_split(np.arange(n_runs), min(n_runs, max_folds))]


def _gram_inverse(gram):
    """Pseudo-inverses of Gram matrices, each scaled to unit diagonal first so that features of
    different scales are treated alike and a feature that never varies drops out.

    Parameters
    ----------
    gram : ndarray, shape (n, k, k), float64

    Returns
    -------
    ndarray, shape (n, k, k), float32
    """
    diag = np.einsum("nkk->nk", gram)
    with np.errstate(divide="ignore"):
        scale = np.where(diag > 1e-12 * max(float(diag.max(initial=0.0)), 1e-300),
                         1.0 / np.sqrt(diag), 0.0)
    normalised = gram * scale[:, :, None] * scale[:, None, :]
    inverse = np.linalg.pinv(normalised, rcond=1e-6, hermitian=True)
    return (inverse * scale[:, :, None] * scale[:, None, :]).astype(np.float32)


def _explained(sums, inverse, allowed):
    """Explained sum of squares ``b^T G^-1 b`` of every voxel at every candidate.

    Parameters
    ----------
    sums : ndarray, shape (k_voxels, k, n_candidates), float32
        Cross-products ``b`` of the voxels with each feature's pooled time course.
    inverse : ndarray, shape (n_candidates, k, k), float32
        Inverse Gram matrices (:func:`_gram_inverse`).
    allowed : ndarray, shape (n_candidates,), bool

    Returns
    -------
    ndarray, shape (k_voxels, n_candidates), float32; -inf where not ``allowed``
    """
    n_ch = sums.shape[1]
    coef = np.ascontiguousarray(inverse.transpose(1, 2, 0))          # (k, k, n_candidates)
    out = np.zeros((sums.shape[0], sums.shape[2]), np.float32)
    term = np.empty_like(out)
    for c in range(n_ch):
        for d in range(c, n_ch):
            np.multiply(sums[:, c], sums[:, d], out=term)
            term *= coef[c, d] * (1.0 if c == d else 2.0)
            out += term
    out[:, ~allowed] = -np.inf
    return out


def _fit_chunk_features(grid, designs, signals, bases, start, stop, folds, fold_grams, inverse,
                        fold_inverse, allowed, out):
    size, k = grid.size, stop - start
    n_ch, n_grid = fold_grams.shape[2], fold_grams.shape[1]
    voxels = np.arange(k)
    ys, sum_sq = _chunk_signals(signals, bases, start, stop)
    # sum over each fold's runs of y_r^T D_r, per voxel and channel
    cross = np.zeros((len(folds), k * n_ch, size, size), np.float32)
    for f, runs in enumerate(folds):
        for r in runs:
            d = np.asarray(designs[r], np.float32).reshape(designs[r].shape[0], n_ch * size * size)
            cross[f] += (ys[r].T @ d).reshape(k * n_ch, size, size)
    fold_sq = np.stack([sum_sq[runs].sum(axis=0) for runs in folds])
    total_sq = sum_sq.sum(axis=0)
    sums = grid.pool(cross.sum(axis=0)).reshape(k, n_ch, n_grid)

    # Fit on all runs: the estimate (refined on the multiple correlation, sqrt of the explained
    # fraction, the analogue of the one-feature fit's correlation).
    explained = _explained(sums, inverse, allowed)
    with np.errstate(invalid="ignore"):
        scores = np.sqrt(np.maximum(explained, 0.0), where=np.isfinite(explained),
                         out=np.full_like(explained, -np.inf))
    scores = scores.reshape((k,) + grid.shape)
    best = _argmax_grid(scores)
    flat_best = np.ravel_multi_index(best, grid.shape)
    weights = np.einsum("vcd,vd->vc", inverse[flat_best], sums[voxels, :, flat_best],
                        dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = scores[(voxels, *best)] / np.sqrt(total_sq)
    flat = total_sq <= 0
    _store(out, start, stop, grid, best, _refine(scores, best), flat, r, np.nan, 1.0)
    out["weights"][start:stop] = np.where(flat[:, None], np.nan, weights)
    del scores, explained

    # Leave one fold of runs out: refit on the other runs (search and weights), predict it.
    sse = np.zeros(k)
    for held in range(len(folds)):
        held_sums = grid.pool(cross[held]).reshape(k, n_ch, n_grid)
        train = sums - held_sums
        fold_best = _explained(train, fold_inverse[held], allowed).argmax(axis=1)
        w = np.einsum("vcd,vd->vc", fold_inverse[held][fold_best], train[voxels, :, fold_best],
                      dtype=np.float64)
        w = np.nan_to_num(w)
        b_held = held_sums[voxels, :, fold_best].astype(np.float64)
        g_held = fold_grams[held][fold_best]
        sse += (fold_sq[held] - 2.0 * np.einsum("vc,vc->v", w, b_held)
                + np.einsum("vc,vcd,vd->v", w, g_held, w))
        del held_sums, train
    with np.errstate(divide="ignore", invalid="ignore"):
        out["r2"][start:stop] = np.where(total_sq > 0, 1.0 - sse / total_sq, np.nan)
