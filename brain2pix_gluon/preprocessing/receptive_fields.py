"""Receptive-field mapping of voxels to pixels (paper eqs. 1-3, SPEC section 3).

A voxel with centre (col, row) in [-0.5, 0.5) lands on map index
``(floor((col + 0.5) * S), floor((row + 0.5) * S))``; with the reference index order the first
(row) index of the map comes from the *column* centre, as in the authors' code. Overlapping voxels
of one ROI are averaged (eq. 2). The mapping is a sparse voxel->pixel operator, so any eq. 3 weights
can be used instead.
"""

import numpy as np
from scipy import sparse

from ..errors import DataError, check_array

__all__ = ["rf_pixel_indices", "RFMapper", "render_dense_reference"]


def rf_pixel_indices(col_centers, row_centers, size=96, index_order="reference", source=None):
    """Map RF centres to integer map indices.

    Parameters
    ----------
    col_centers, row_centers : ndarray, shape (n_voxels,)
        Centres normalised to [-0.5, 0.5).
    size : int
        Map side S.
    index_order : {"reference", "transpose"}
        "reference": map row from ``col_centers`` (the authors' indexing); "transpose": map row
        from ``row_centers``.
    source : str, optional
        Where the centres came from, for error messages.

    Returns
    -------
    map_rows, map_cols : ndarray of int64, shape (n_voxels,)
    """
    cols = check_array(col_centers, "col_centers", ndim=1, finite=True, source=source,
                       dtype_kind="fiu").astype(float)
    rows = check_array(row_centers, "row_centers", shape=(cols.shape[0],), finite=True,
                       source=source, dtype_kind="fiu").astype(float)
    for name, values in (("col_centers", cols), ("row_centers", rows)):
        bad = (values < -0.5) | (values >= 0.5)
        if bad.any():
            first = int(np.argmax(bad))
            raise DataError(
                f"{name}{' in ' + str(source) if source else ''}: expected RF centres in "
                f"[-0.5, 0.5), got {int(bad.sum())} outside (first: voxel {first} = "
                f"{values[first]!r}); centres are never wrapped silently")
    first = np.floor((cols + 0.5) * size).astype(np.int64)
    second = np.floor((rows + 0.5) * size).astype(np.int64)
    if index_order == "reference":
        return first, second
    if index_order == "transpose":
        return second, first
    raise DataError(f"index_order: expected 'reference' or 'transpose', got {index_order!r}")


class RFMapper:
    """Render voxel responses of one ROI as an RFSimage.

    Parameters
    ----------
    col_centers, row_centers : ndarray, shape (n_voxels,)
        RF centres in [-0.5, 0.5) (finite: drop voxels without an estimate first).
    size : int
        Map side S (96 in the paper).
    index_order : {"reference", "transpose"}
        See :func:`rf_pixel_indices`.
    operator : scipy.sparse matrix, shape (size*size, n_voxels), optional
        Eq. 3 weights to use instead of the point-RF average of eq. 2.

    Attributes
    ----------
    operator : scipy.sparse.csr_matrix, shape (size*size, n_voxels)
    counts : ndarray, shape (size, size)
        Number of voxels landing on each pixel (M in eq. 2).
    """

    def __init__(self, col_centers, row_centers, size=96, index_order="reference", operator=None,
                 source=None):
        self.size = int(size)
        self.map_rows, self.map_cols = rf_pixel_indices(
            col_centers, row_centers, self.size, index_order, source)
        self.n_voxels = self.map_rows.shape[0]
        pixel = self.map_rows * self.size + self.map_cols
        counts = np.bincount(pixel, minlength=self.size * self.size)
        self.counts = counts.reshape(self.size, self.size)
        if operator is None:
            weights = 1.0 / counts[pixel]
            operator = sparse.csr_matrix(
                (weights.astype(np.float32), (pixel, np.arange(self.n_voxels))),
                shape=(self.size * self.size, self.n_voxels))
        else:
            operator = sparse.csr_matrix(operator, dtype=np.float32)
            if operator.shape != (self.size * self.size, self.n_voxels):
                raise DataError(
                    f"operator: expected shape ({self.size * self.size}, {self.n_voxels}), "
                    f"got {operator.shape}")
        self.operator = operator
        self._operator_t = operator.T.tocsr()

    @property
    def mask(self):
        """Boolean map, shape (size, size): pixels that at least one voxel lands on."""
        return self.counts > 0

    def render(self, voxels):
        """Apply eq. 2 (or the given eq. 3 operator).

        Parameters
        ----------
        voxels : ndarray, shape (..., n_voxels)

        Returns
        -------
        ndarray, shape (..., size, size), float32
        """
        arr = check_array(voxels, "voxels", dtype_kind="fiu")
        if arr.ndim == 0 or arr.shape[-1] != self.n_voxels:
            raise DataError(
                f"voxels: expected last dimension {self.n_voxels} (one value per voxel of the "
                f"ROI), got shape {arr.shape}")
        lead = arr.shape[:-1]
        flat = arr.reshape(-1, self.n_voxels).astype(np.float32, copy=False)
        images = np.asarray(self._operator_t.T.dot(flat.T).T, dtype=np.float32) \
            if flat.shape[0] else np.zeros((0, self.size * self.size), np.float32)
        return images.reshape(lead + (self.size, self.size))

    def sample(self, images):
        """Values of ``images`` at each voxel's RF pixel (used by the synthetic experiment).

        Parameters
        ----------
        images : ndarray, shape (..., size, size)

        Returns
        -------
        ndarray, shape (..., n_voxels)
        """
        arr = np.asarray(images)
        return arr[..., self.map_rows, self.map_cols]


def render_dense_reference(voxels, map_rows, map_cols, size=96, per_volume=True):
    """Eq. 2 the way the authors' code computes it: a one-hot image per voxel, scaled and summed.

    Kept for the benchmark and as an independent check.

    Parameters
    ----------
    voxels : ndarray, shape (n_samples, n_voxels)
    map_rows, map_cols : ndarray of int, shape (n_voxels,)
    size : int
    per_volume : bool
        True: one volume at a time, ``sum_v one_hot[v] * value[v]`` (the reference's loop);
        False: the same dense product as a single BLAS call over all volumes.

    Returns
    -------
    ndarray, shape (n_samples, size, size), float32
    """
    voxels = np.asarray(voxels, np.float32)
    n_voxels = len(map_rows)
    one_hot = np.zeros((n_voxels, size, size), np.float32)
    one_hot[np.arange(n_voxels), map_rows, map_cols] = 1.0
    counts = one_hot.sum(axis=0)
    if per_volume:
        out = np.stack([(one_hot * values[:, None, None]).sum(axis=0) for values in voxels])
    else:
        out = (voxels @ one_hot.reshape(n_voxels, -1)).reshape(-1, size, size)
    out = np.where(counts > 0, out / np.maximum(counts, 1), 0.0)
    return out.astype(np.float32)
