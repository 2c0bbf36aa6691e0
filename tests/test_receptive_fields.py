import numpy as np
import pytest
from scipy import sparse

from brain2pix_gluon.errors import DataError
from brain2pix_gluon.preprocessing.receptive_fields import (
    RFMapper, render_dense_reference, rf_pixel_indices)


def test_reference_index_order_takes_the_map_row_from_the_column_centre():
    rows, cols = rf_pixel_indices([-0.5, 0.0, 0.49], [0.25, -0.5, 0.0], size=96)
    np.testing.assert_array_equal(rows, [0, 48, 95])
    np.testing.assert_array_equal(cols, [72, 0, 48])
    t_rows, t_cols = rf_pixel_indices([-0.5, 0.0, 0.49], [0.25, -0.5, 0.0], 96, "transpose")
    np.testing.assert_array_equal(t_rows, cols)
    np.testing.assert_array_equal(t_cols, rows)


def test_eq2_averages_voxels_sharing_a_pixel():
    # voxels 0 and 1 land on the same pixel, voxel 2 alone
    mapper = RFMapper([0.0, 0.001, -0.25], [0.0, 0.001, 0.25], size=8)
    image = mapper.render(np.array([2.0, 4.0, -1.0]))
    assert image.shape == (8, 8)
    assert image[4, 4] == pytest.approx(3.0)
    assert image[2, 6] == pytest.approx(-1.0)
    assert np.count_nonzero(image) == 2
    assert mapper.counts[4, 4] == 2 and mapper.counts.sum() == 3
    assert mapper.mask.sum() == 2


def test_render_keeps_leading_dimensions_and_matches_the_dense_reference(rng):
    cols, rows = rng.uniform(-0.5, 0.5, (2, 300))
    mapper = RFMapper(cols, rows, size=32)
    voxels = rng.normal(size=(4, 5, 300)).astype(np.float32)
    images = mapper.render(voxels)
    assert images.shape == (4, 5, 32, 32)
    dense = render_dense_reference(voxels.reshape(20, 300), mapper.map_rows, mapper.map_cols, 32)
    np.testing.assert_allclose(images.reshape(20, 32, 32), dense, atol=1e-5)


def test_eq3_operator_can_be_plugged_in():
    weights = sparse.csr_matrix(np.array([[0.5, 0.5], [0.0, 2.0], [0, 0], [0, 0]]))
    mapper = RFMapper([0.0, 0.2], [0.0, 0.2], size=2, operator=weights)
    np.testing.assert_allclose(mapper.render(np.array([2.0, 4.0])), [[3.0, 8.0], [0.0, 0.0]])
    with pytest.raises(DataError, match=r"operator: expected shape \(4, 2\)"):
        RFMapper([0.0, 0.2], [0.0, 0.2], size=2, operator=np.ones((3, 2)))


@pytest.mark.parametrize("bad", [0.5, -0.51, 1.2])
def test_centres_outside_the_range_are_an_error_not_a_wrap(bad):
    with pytest.raises(DataError, match=r"col_centers.*\[-0.5, 0.5\).*voxel 1"):
        RFMapper([0.0, bad], [0.0, 0.0], size=8)


def test_nan_centres_and_wrong_voxel_counts_are_rejected():
    with pytest.raises(DataError, match="NaN"):
        RFMapper([0.0, np.nan], [0.0, 0.0], size=8)
    mapper = RFMapper([0.0, 0.1], [0.0, 0.1], size=8)
    with pytest.raises(DataError, match=r"expected last dimension 2.*shape \(3, 5\)"):
        mapper.render(np.zeros((3, 5)))


def test_sample_reads_pixels_at_the_rf_positions(rng):
    mapper = RFMapper([-0.5, 0.2], [0.1, -0.3], size=10)
    image = rng.random((10, 10))
    np.testing.assert_array_equal(mapper.sample(image), image[[0, 7], [6, 2]])
