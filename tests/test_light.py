"""Cone excitations and opponent contrasts of light, checked against the published matrix by hand."""

import numpy as np
import pytest

from brain2pix_gluon.preprocessing.light import cone_channels

# Hunt-Pointer-Estevez LMS of the linear sRGB primaries, typed in from the published matrix
RED_LMS = (0.31399, 0.15537, 0.01775)
GREEN_LMS = (0.63951, 0.75789, 0.10944)


def _uniform(rgb, size=16, t=1):
    return np.broadcast_to(np.asarray(rgb, np.float32), (t, size, size, 3)).copy()


def test_cone_contrasts_of_saturated_primaries_by_hand():
    l, m, s = RED_LMS
    _, rg, by = cone_channels(_uniform((1.0, 0.0, 0.0)))
    assert rg[0, 0, 0] == pytest.approx((l - m) / (l + m + 0.05), rel=1e-5)
    assert by[0, 0, 0] == pytest.approx((s - 0.5 * (l + m)) / (l + m + 0.05), rel=1e-5)
    l, m, _ = GREEN_LMS
    _, rg, _ = cone_channels(_uniform((0.0, 1.0, 0.0)))
    assert rg[0, 0, 0] == pytest.approx((l - m) / (l + m + 0.05), rel=1e-5)
    # red excites L more than M and green the opposite: opposite signs of L - M
    assert cone_channels(_uniform((1, 0, 0)))[1][0, 0, 0] > 0 > rg[0, 0, 0]


def test_greys_carry_no_colour_and_luminance_follows_the_gamma():
    for level in (0.2, 0.5, 0.9):
        lum, rg, by = cone_channels(_uniform((level, level, level)))
        assert abs(rg).max() < 0.01 and abs(by).max() < 0.01
        # L + M of a grey: row sums of the matrix's first two rows times level ** 2.2
        expected = (sum(RED_LMS[:2]) + sum(GREEN_LMS[:2]) + 0.04650 + 0.08670) * level ** 2.2
        assert lum[0, 0, 0] == pytest.approx(expected, rel=1e-4)
