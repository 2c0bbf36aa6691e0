import numpy as np
import pytest

from brain2pix_gluon.errors import DataError
from brain2pix_gluon.preprocessing.signals import alignment_index, select_roi_voxels, zscore


def test_zscore_population_std_and_degenerate_voxels(rng):
    data = rng.normal(3.0, 2.0, (50, 4))
    data[:, 2] = 7.0          # constant voxel
    data[5, 3] = np.nan       # NaN voxel
    out = zscore(data)
    np.testing.assert_allclose(out[:, :2].mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(out[:, :2].std(0), 1, atol=1e-5)   # ddof = 0
    assert np.all(out[:, 2] == 0) and np.all(out[:, 3] == 0)
    assert out.dtype == np.float32


def test_alignment_uses_volumes_t_plus_4_to_t_plus_8():
    frames, first, dropped = alignment_index(20, 20, shift=4, n_trs=5)
    np.testing.assert_array_equal(frames, np.arange(12))
    np.testing.assert_array_equal(first, np.arange(12) + 4)
    assert dropped == 8
    # a short video limits the samples; extra frames beyond the volumes are dropped too
    frames, first, dropped = alignment_index(5, 20)
    assert frames.tolist() == [0, 1, 2, 3, 4] and dropped == 0
    frames, _, dropped = alignment_index(30, 20, shift=2, n_trs=3)
    assert frames.size == 16 and dropped == 14
    with pytest.raises(DataError):
        alignment_index(10, 10, shift=-1)


def test_roi_voxels_are_dorsal_then_ventral_with_finite_centres():
    signals = np.arange(2 * 6).reshape(2, 6).astype(float)
    masks = {"V1d": np.array([0, 0, 1, 1, 0, 0], bool), "V1v": np.array([1, 0, 0, 0, 0, 1], bool)}
    cols = {"V1d": np.array([0.1, np.nan]), "V1v": np.array([0.2, 0.3])}
    rows = {"V1d": np.array([0.0, 0.0]), "V1v": np.array([0.1, np.nan])}
    voxels, c, r = select_roi_voxels(signals, masks, "V1", cols, rows)
    np.testing.assert_array_equal(voxels, signals[:, [2, 0]])
    np.testing.assert_array_equal(c, [0.1, 0.2])
    with pytest.raises(DataError, match=r"'V1d'.*expected 5 entries.*mask shape \(6,\)"):
        select_roi_voxels(signals[:, :5], masks, "V1", cols, rows)
    with pytest.raises(DataError, match="'V2d' missing"):
        select_roi_voxels(signals, masks, "V2", cols, rows)
