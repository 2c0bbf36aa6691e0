"""Fisheye ("retina") warp of the target frames (docs/method.md section 2, after Bashivan et al. 2019).

The receptive-field centres were estimated on warped frames, so every target frame is warped the
same way. The authors refit the radial curve for every frame; the map depends only on the image
size and ``max_ratio``, so here it is computed once per size and applied as a sparse bilinear
operator (4 non-zeros per output pixel), which is exact bilinear interpolation.
"""

import functools

import numpy as np
from scipy import optimize, sparse

from ..config import DataConfig
from ..errors import DataError, check_array

__all__ = ["radial_curve", "fisheye_map", "FisheyeWarp", "cached_warp", "fisheye_warp",
           "fisheye_warp_reference", "fisheye_valid_mask"]


def _sampled_radii(rf, size, max_ratio):
    """Radii r[0..size//2] of the sampling lattice for density ``rf`` (docs/method.md section 2, step 1)."""
    a = np.log(max_ratio) / (size // 2)
    radii = np.zeros(size // 2 + 1)
    with np.errstate(over="ignore"):  # densities near the lower bracket overflow to inf: fine
        for k in range(size // 2):
            radii[k + 1] = radii[k] + np.exp(a * radii[k] / 2.0) / np.sqrt(np.pi * rf)
    return radii


def _lattice_radii(size, max_ratio):
    """Source radii r[0..S//2-1] for the density solving S/2 - r[S//2 - 1] = 0 (docs/method.md section 2, steps 2-3)."""
    half = size // 2
    rf = optimize.brentq(lambda d: size / 2.0 - _sampled_radii(d, size, max_ratio)[half - 1],
                         0.01, 5.0)
    return _sampled_radii(rf, size, max_ratio)[:half]


def radial_curve(size=DataConfig.image_size, max_ratio=DataConfig.max_ratio):
    """Fit the radial map ``f(rho) = alpha rho^2 + beta rho`` (docs/method.md section 2, steps 1-4).

    Parameters
    ----------
    size : int
        Image side S in pixels.
    max_ratio : float
        Ratio of peripheral to foveal sampling distance.

    Returns
    -------
    alpha, beta : float
        Non-negative coefficients; a target pixel at radius rho samples the source at f(rho).
    """
    source = _lattice_radii(size, max_ratio)
    rho = np.arange(size // 2, dtype=float)
    # f is linear in (alpha, beta): bounded linear least squares reaches the unique optimum that the
    # authors' iterative fit (start alpha=0, beta=0.4) converges to.
    design = np.stack([rho ** 2, rho], axis=1)
    fit = optimize.lsq_linear(design, source, bounds=(0.0, np.inf), method="bvls")
    return float(fit.x[0]), float(fit.x[1])


def fisheye_map(size=DataConfig.image_size, max_ratio=DataConfig.max_ratio):
    """Source coordinates sampled by every output pixel.

    Returns
    -------
    src_rows, src_cols : ndarray, shape (size, size)
        Row (y) and column (x) in the input image read by output pixel (i, j).
    """
    alpha, beta = radial_curve(size, max_ratio)
    centre = (size - 1) / 2.0
    rows, cols = np.mgrid[0:size, 0:size].astype(float)
    dy, dx = rows - centre, cols - centre
    rho = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx)
    radius = alpha * rho ** 2 + beta * rho
    return centre + radius * np.sin(theta), centre + radius * np.cos(theta)


def _bilinear_operator(src_rows, src_cols, height, width):
    """Sparse (H_out*W_out, height*width) matrix of bilinear weights; neighbours outside are 0."""
    r0 = np.floor(src_rows).astype(np.int64)
    c0 = np.floor(src_cols).astype(np.int64)
    fr, fc = src_rows - r0, src_cols - c0
    out_index = np.arange(src_rows.size).reshape(src_rows.shape)
    rows_idx, cols_idx, weights = [], [], []
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc),
                      (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rr, cc = r0 + dr, c0 + dc
        inside = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width) & (w > 0)
        rows_idx.append(out_index[inside])
        cols_idx.append(rr[inside] * width + cc[inside])
        weights.append(w[inside])
    return sparse.csr_matrix(
        (np.concatenate(weights), (np.concatenate(rows_idx), np.concatenate(cols_idx))),
        shape=(src_rows.size, height * width))


WARP_BATCH = 16     # frames per sparse product in FisheyeWarp.warp_nchw (measured: 8-32 alike)


class FisheyeWarp:
    """The warp for one image size, computed once and applied to any number of frames.

    Parameters
    ----------
    size : int
        Side of the square frames.
    max_ratio : float
        Warp strength (10 in the paper's code).
    """

    def __init__(self, size=DataConfig.image_size, max_ratio=DataConfig.max_ratio):
        self.size = int(size)
        self.max_ratio = float(max_ratio)
        self.src_rows, self.src_cols = fisheye_map(self.size, self.max_ratio)
        self.operator = _bilinear_operator(
            self.src_rows, self.src_cols, self.size, self.size).astype(np.float32)

    def _check(self, frames):
        arr = check_array(frames, "frames", ndim=(3, 4), dtype_kind="fiu")
        if arr.shape[-3:-1] != (self.size, self.size):
            raise DataError(
                f"frames: expected spatial size ({self.size}, {self.size}), got shape {arr.shape}")
        return arr

    def _operator(self, scale):
        return self.operator if scale == 1.0 else self.operator * np.float32(scale)

    def _apply(self, batch, operator):
        """Warp (N, H, W, C) -> array of shape (H, W, N, C), float32, with ``operator`` (the
        warp, its weights multiplied by the output scale)."""
        n, h, w, c = batch.shape
        # One strided copy (cheap for uint8 input) puts pixels first, so the sparse operator
        # multiplies all frames and channels at once.
        flat = np.ascontiguousarray(batch.transpose(1, 2, 0, 3)).reshape(h * w, n * c)
        return np.asarray(operator @ flat.astype(np.float32, copy=False)).reshape(h, w, n, c)

    def __call__(self, frames, scale=1.0):
        """Warp frames.

        Parameters
        ----------
        frames : ndarray, shape (H, W, C) or (N, H, W, C), float in [0, 1] (or uint8 with
            ``scale=1/255``)
        scale : float
            Factor applied to the output (folded into the operator).

        Returns
        -------
        ndarray, same shape as ``frames``, float32
        """
        arr = self._check(frames)
        single = arr.ndim == 3
        out = np.ascontiguousarray(self._apply(arr[None] if single else arr,
                                               self._operator(scale)).transpose(2, 0, 1, 3))
        return out[0] if single else out

    def warp_nchw(self, frames, scale=1.0, dtype=np.float32):
        """Warp (N, H, W, C) frames straight into the NCHW layout of the network targets.

        Returns
        -------
        ndarray, shape (N, C, H, W), of ``dtype``
        """
        arr = self._check(frames)
        if arr.ndim != 4:
            raise DataError(f"frames: expected shape (N, H, W, C), got {arr.shape}")
        operator = self._operator(scale)
        out = np.empty((arr.shape[0], arr.shape[3], self.size, self.size), dtype)
        # a few frames at a time: the transposes then stay in the CPU caches (twice as fast as
        # the whole run at once for 96x96 frames); each frame's values do not depend on the batch
        for start in range(0, arr.shape[0], WARP_BATCH):
            batch = arr[start:start + WARP_BATCH]
            out[start:start + batch.shape[0]] = self._apply(batch, operator).transpose(2, 3, 0, 1)
        return out


@functools.lru_cache(maxsize=8)
def _cached_warp(size, max_ratio):
    return FisheyeWarp(size, max_ratio)


def cached_warp(size=DataConfig.image_size, max_ratio=DataConfig.max_ratio):
    """The :class:`FisheyeWarp` of a size, computed on first use and reused afterwards."""
    return _cached_warp(int(size), float(max_ratio))


def fisheye_warp(frames, max_ratio=DataConfig.max_ratio):
    """Warp square frames with the map cached per (size, max_ratio).

    Parameters
    ----------
    frames : ndarray, shape (H, W, C) or (N, H, W, C), float in [0, 1], H == W
    max_ratio : float

    Returns
    -------
    ndarray, same shape as ``frames``, float32
    """
    arr = check_array(frames, "frames", ndim=(3, 4), dtype_kind="fiu")
    size = arr.shape[-3]
    if arr.shape[-2] != size:
        raise DataError(f"frames: expected square frames (H == W), got shape {arr.shape}")
    return cached_warp(size, max_ratio)(arr)


def fisheye_warp_reference(frame, max_ratio=DataConfig.max_ratio):
    """Warp one frame the way the authors' routine does: refit the curve, then sample.

    Kept for the benchmark and as an independent check; use :func:`fisheye_warp` for real work.

    Parameters
    ----------
    frame : ndarray, shape (S, S, C)

    Returns
    -------
    ndarray, shape (S, S, C), float32
    """
    from scipy import ndimage

    size = frame.shape[0]
    source = _lattice_radii(size, max_ratio)       # solved again for every frame, as the authors do
    rho_fit = np.arange(size // 2, dtype=float)
    (alpha, beta), _ = optimize.curve_fit(
        lambda r, a, b: a * r ** 2 + b * r, rho_fit, source, p0=(1e-9, 0.4),
        bounds=(0.0, np.inf))
    centre = (size - 1) / 2.0
    rows, cols = np.mgrid[0:size, 0:size].astype(float)
    rho = np.hypot(cols - centre, rows - centre)
    theta = np.arctan2(rows - centre, cols - centre)
    radius = alpha * rho ** 2 + beta * rho
    coords = [centre + radius * np.sin(theta), centre + radius * np.cos(theta)]
    out = np.empty(frame.shape, dtype=np.float32)
    for ch in range(frame.shape[2]):
        out[..., ch] = ndimage.map_coordinates(
            frame[..., ch].astype(float), coords, order=1, mode="grid-constant", cval=0.0)
    return out


def fisheye_valid_mask(size, max_ratio=DataConfig.max_ratio, fisheye=True):
    """Pixels of a warped frame whose source sample falls inside the source image.

    Built from the warp itself (:func:`fisheye_map`): output
    pixel (i, j) is valid when its source coordinates lie in ``[0, size - 1]`` along both axes,
    i.e. its bilinear sample uses only pixels of the frame. Outside, the warped frame is black
    (or, on the rim, a dimmed mix with black) whatever the video shows.

    Parameters
    ----------
    size : int
        Side of the square frames.
    max_ratio : float
        Warp strength of the prepared data.
    fisheye : bool
        False (frames not warped): every pixel is valid.

    Returns
    -------
    ndarray of bool, shape (size, size)
    """
    if int(size) != size or size < 2:
        raise DataError(f"fisheye_valid_mask: size expected an integer >= 2, got {size!r}")
    size = int(size)
    if not fisheye:
        return np.ones((size, size), bool)
    rows, cols = fisheye_map(size, max_ratio)
    # the rounding slack keeps pixels whose source sits on the last row/column up to fp error
    slack = 1e-9 * size
    return ((rows >= -slack) & (rows <= size - 1 + slack)
            & (cols >= -slack) & (cols <= size - 1 + slack))
