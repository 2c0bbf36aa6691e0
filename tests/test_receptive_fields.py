import numpy as np
import pytest
from scipy import sparse

from brain2pix_gluon.errors import DataError
from brain2pix_gluon.preprocessing.receptive_fields import (
    RFMapper, format_retinotopy, render_dense_reference, retinotopy_report, rf_pixel_indices)


def test_aligned_layout_puts_y_in_the_row_and_x_in_the_column():
    x, y = [-0.5, 0.0, 0.49], [0.25, -0.5, 0.0]
    rows, cols = rf_pixel_indices(x, y, size=96)
    # cell = floor((c + 0.5) * 96): x -> 0, 48, 95; y -> 72, 0, 48
    np.testing.assert_array_equal(rows, [72, 0, 48])
    np.testing.assert_array_equal(cols, [0, 48, 95])
    for layout in ("authors_fixed_rf", "authors_learned_rf"):   # the authors' map[x, y]
        a_rows, a_cols = rf_pixel_indices(x, y, 96, layout)
        np.testing.assert_array_equal(a_rows, [0, 48, 95])
        np.testing.assert_array_equal(a_cols, [72, 0, 48])
    with pytest.raises(DataError, match=r"rf_layout: expected one of .*got 'reference'"):
        rf_pixel_indices(x, y, 96, "reference")


def test_default_renders_a_voxel_where_the_frame_shows_its_position():
    # upper right of the visual field: x = +0.3 (right), y = -0.3 (up); on a 10-px frame that
    # is row floor(0.2 * 10) = 2, column floor(0.8 * 10) = 8
    image = RFMapper([0.3], [-0.3], size=10).render(np.array([5.0]))
    assert image[2, 8] == 5.0 and np.count_nonzero(image) == 1


def _authors_rendering(values, cols, rows, size):
    """The authors' indexing written out: map[int((col+.5)*S), int((row+.5)*S)], eq. 2 averaging."""
    total = np.zeros((size, size))
    count = np.zeros((size, size))
    for value, col, row in zip(values, cols, rows):
        i, j = int((col + 0.5) * size), int((row + 0.5) * size)
        total[i, j] += value
        count[i, j] += 1
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


@pytest.mark.parametrize("layout", ["authors_fixed_rf", "authors_learned_rf", "aligned"])
def test_layouts_equal_a_direct_rendering_of_the_authors_indexing(layout, rng):
    size = 24
    cols, rows = rng.uniform(-0.5, 0.5, (2, 400))   # many voxels share a pixel
    values = rng.normal(size=400)
    expected = _authors_rendering(values, cols, rows, size)
    if layout == "aligned":
        expected = expected.T                         # aligned = the authors' map transposed
    image = RFMapper(cols, rows, size, layout).render(values.astype(np.float32))
    np.testing.assert_array_equal(image != 0, expected != 0)
    np.testing.assert_allclose(image, expected, rtol=2e-6, atol=2e-6)


def test_eq2_averages_voxels_sharing_a_pixel():
    # voxels 0 and 1 land on the same pixel, voxel 2 alone at x -0.25 (column 2), y 0.25 (row 6)
    mapper = RFMapper([0.0, 0.001, -0.25], [0.0, 0.001, 0.25], size=8)
    image = mapper.render(np.array([2.0, 4.0, -1.0]))
    assert image.shape == (8, 8)
    assert image[4, 4] == pytest.approx(3.0)
    assert image[6, 2] == pytest.approx(-1.0)
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
    with pytest.raises(DataError, match=r"RF centre x.*\[-0.5, 0.5\).*voxel 1"):
        RFMapper([0.0, bad], [0.0, 0.0], size=8)


def test_the_largest_centre_below_one_half_lands_on_the_last_pixel():
    # estimate-rf writes centres clipped to the largest float below 0.5; 0.5 + that is 1.0
    top = np.nextafter(0.5, 0.0)
    mapper = RFMapper([top, -0.5], [0.0, top], size=8)
    expected = np.zeros((8, 8))
    expected[4, 7] = 1.0        # x at the right edge, y at the centre (row 4)
    expected[7, 0] = 2.0        # x at the left edge, y at the bottom edge
    np.testing.assert_allclose(mapper.render(np.array([1.0, 2.0])), expected)


def test_nan_centres_and_wrong_voxel_counts_are_rejected():
    with pytest.raises(DataError, match="NaN"):
        RFMapper([0.0, np.nan], [0.0, 0.0], size=8)
    mapper = RFMapper([0.0, 0.1], [0.0, 0.1], size=8)
    with pytest.raises(DataError, match=r"expected last dimension 2.*shape \(3, 5\)"):
        mapper.render(np.zeros((3, 5)))


def _parts(rng, dorsal_y_sign=1.0, swap=False, n=200):
    out = {}
    for roi in ("V1", "V2", "V3"):
        ecc = rng.uniform(0.05, 0.45, (2, n))
        theta = rng.uniform(0.05, np.pi - 0.05, (2, n))
        parts = {}
        for k, (part, sign) in enumerate((("d", dorsal_y_sign), ("v", -dorsal_y_sign))):
            x, y = ecc[k] * np.cos(theta[k]), sign * ecc[k] * np.sin(theta[k])
            parts[part] = (y, x) if swap else (x, y)
        out[roi] = parts
    return out


def test_retinotopy_report_names_the_setting_that_fixes_it(rng):
    good = retinotopy_report(_parts(rng))
    assert good["verdict"] == "aligned" and good["rois"]["V2"]["dorsal_lower"] == 1.0
    assert "WARNING" not in format_retinotopy(good)[-1]
    flipped = retinotopy_report(_parts(rng, dorsal_y_sign=-1.0))
    assert flipped["verdict"] == "flipped"
    assert "set data.rf_flip_y=true (now false)" in format_retinotopy(flipped)[-1]
    swapped = retinotopy_report(_parts(rng, swap=True))
    assert swapped["verdict"] == "wrong_axis"
    assert "WARNING: wrong_axis" in format_retinotopy(swapped)[-1]
    assert "set data.rf_swap_axes=true" in swapped["advice"]
    mixed = _parts(rng)
    mixed["V3"] = {"d": mixed["V3"]["d"], "v": mixed["V3"]["d"]}   # no split at all
    assert retinotopy_report(mixed)["verdict"] == "unclear"
