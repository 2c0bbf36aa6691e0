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


def test_samples_come_from_the_video_and_leftover_volumes_are_counted():
    from brain2pix_gluon.preprocessing.signals import plan_run

    # 37 frames, 60 volumes: frame 36 uses volumes 40..44, so 60 - 45 = 15 volumes are unused
    plan = plan_run(37, 60, shift=4, n_trs=5, tr=0.7, run="run_001")
    np.testing.assert_array_equal(plan["frames"], np.arange(37))
    np.testing.assert_array_equal(plan["first_volumes"], np.arange(4, 41))
    assert plan["n_unused"] == 15 and plan["n_dropped"] == 0
    assert "run_001: 37 frames" in plan["message"] and "-> 37 samples" in plan["message"]
    assert "15 unused after the last window (10.5 s)" in plan["message"]
    # a run that stops with its video: the last 8 frames have no full window and are dropped
    plan = plan_run(60, 60, shift=4, n_trs=5)
    assert plan["frames"].size == 52 and plan["n_dropped"] == 8 and plan["n_unused"] == 0


def test_wrong_pairings_of_runs_and_videos_are_errors_with_numbers():
    from brain2pix_gluon.preprocessing.signals import plan_run

    # 70 frames but 60 volumes serve only 52: 18 frames would be dropped
    with pytest.raises(DataError, match=r"v.webm is longer than run 'r' can serve: 70 frames .*"
                                        r"only 52 frames; 18 frames \(12.6 s\)"):
        plan_run(70, 60, video="v.webm", run="r")
    # 100 frames, 300 volumes: frame 99 uses volumes 103..107, 300 - 108 = 192 (134.4 s) > 60 s
    with pytest.raises(DataError, match=r"run 'r' is far longer than its video v.webm: 300 volumes"
                                        r".*192 volumes \(134.4 s\).*max_unused_s = 60 s"):
        plan_run(100, 300, video="v.webm", run="r")
    assert plan_run(100, 300, max_unused_s=200.0)["n_unused"] == 192
