import os

import numpy as np
import pytest
from scipy import io as sio

from brain2pix_gluon.errors import DataError
from brain2pix_gluon.io.raw import (MASK_KEYS, discover_runs, load_rf_centres, load_roi_masks,
                                    load_run)
from brain2pix_gluon.io.video import read_video, write_video


def _masks(n=12):
    masks = {}
    for k, key in enumerate(MASK_KEYS):
        m = np.zeros(n, bool)
        m[2 * k:2 * k + 2] = True
        masks[key] = m
    return masks


def test_mat_masks_round_trip_and_missing_key(tmp_path):
    masks = _masks()
    path = str(tmp_path / "roimask.mat")
    sio.savemat(path, {k: v[:, None] for k, v in masks.items()})
    loaded = load_roi_masks(path)
    for key in MASK_KEYS:
        np.testing.assert_array_equal(loaded[key], masks[key])
    sio.savemat(path, {k: v[:, None] for k, v in masks.items() if k != "V2v"})
    with pytest.raises(DataError, match=r"roimask.mat: key 'V2v' missing"):
        load_roi_masks(path)


def test_nifti_masks_folder(tmp_path):
    import nibabel

    folder = tmp_path / "masks"
    folder.mkdir()
    masks = _masks(24)
    for key, m in masks.items():
        nibabel.save(nibabel.Nifti1Image(m.reshape(2, 3, 4).astype(np.uint8), np.eye(4)),
                     str(folder / f"{key}.nii.gz"))
    loaded = load_roi_masks(str(folder))
    np.testing.assert_array_equal(loaded["V3d"], masks["V3d"])
    os.remove(folder / "V1v.nii.gz")
    with pytest.raises(DataError, match="missing V1v.nii.gz"):
        load_roi_masks(str(folder))


def test_centres_per_mask_voxel_or_per_brain_voxel(tmp_path):
    masks = _masks()
    cols = {k: np.array([0.1, np.nan]) for k in MASK_KEYS}
    full = {k: np.linspace(-0.4, 0.4, 12) for k in MASK_KEYS}
    sio.savemat(tmp_path / "c.mat", cols)
    sio.savemat(tmp_path / "r.mat", full)
    c, r = load_rf_centres(str(tmp_path / "c.mat"), str(tmp_path / "r.mat"), masks)
    np.testing.assert_array_equal(c["V1d"], [0.1, np.nan])
    np.testing.assert_allclose(r["V2d"], full["V2d"][masks["V2d"]])
    sio.savemat(tmp_path / "r.mat", {k: np.zeros(5) for k in MASK_KEYS})
    # a disagreement names the masks' file as well: either file may be the wrong one
    with pytest.raises(DataError, match=r"ROI mask 'V1d' in roimask.mat selects 2 of 12 voxels, "
                                        r"but RF centres .*r.mat hold 5 values"):
        load_rf_centres(str(tmp_path / "c.mat"), str(tmp_path / "r.mat"), masks, "roimask.mat")
    # an infinite centre is not "no estimate"
    sio.savemat(tmp_path / "r.mat", {**full, "V2v": np.array([0.0] * 11 + [np.inf])})
    with pytest.raises(DataError, match=r"r.mat, key 'V2v': row centre of voxel 11 is inf"):
        load_rf_centres(str(tmp_path / "c.mat"), str(tmp_path / "r.mat"), masks)


def test_centres_csv(tmp_path):
    path = tmp_path / "rf_centres.csv"
    lines = ["mask,col,row"] + [f"{k},0.1,-0.2" for k in MASK_KEYS for _ in range(2)]
    path.write_text("\n".join(lines) + "\n")
    c, r = load_rf_centres(str(path), masks=_masks())
    assert c["V3v"].tolist() == [0.1, 0.1] and r["V1d"].tolist() == [-0.2, -0.2]
    path.write_text("mask,col,row\nV9x,0,0\n")
    with pytest.raises(DataError, match="line 2: unknown mask 'V9x'"):
        load_rf_centres(str(path))


def test_runs_npy_2d_4d_nifti_and_nan(tmp_path, rng):
    data = rng.normal(size=(7, 2, 3, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", data)
    np.save(tmp_path / "b.npy", data.reshape(7, 24))
    np.testing.assert_array_equal(load_run(str(tmp_path / "a.npy")), data.reshape(7, 24))
    np.testing.assert_array_equal(load_run(str(tmp_path / "b.npy")), data.reshape(7, 24))
    import nibabel

    nibabel.save(nibabel.Nifti1Image(np.moveaxis(data, 0, -1), np.eye(4)), str(tmp_path / "c.nii.gz"))
    np.testing.assert_allclose(load_run(str(tmp_path / "c.nii.gz")), data.reshape(7, 24))
    data[3, 0, 0, 1] = np.nan
    np.save(tmp_path / "d.npy", data)
    with pytest.raises(DataError, match=r"signals in .*d.npy: expected finite values.*\(3, 1\)"):
        load_run(str(tmp_path / "d.npy"))
    with pytest.raises(DataError, match="does not exist"):
        load_run(str(tmp_path / "missing.npy"))
    (tmp_path / "e.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="could not be read"):
        load_run(str(tmp_path / "e.npy"))


def test_discover_runs_groups_repetitions_and_needs_videos(tmp_path):
    test = tmp_path / "test"
    test.mkdir()
    for rep in (1, 2):
        np.save(test / f"clip_01_rep_{rep:02d}.npy", np.zeros((3, 2)))
    with pytest.raises(DataError, match="video for 'clip_01' not found"):
        discover_runs(str(tmp_path), "test")
    (test / "clip_01.mp4").write_bytes(b"")
    runs = discover_runs(str(tmp_path), "test")
    assert len(runs) == 1 and len(runs[0]["signals"]) == 2
    with pytest.raises(DataError, match="folder train/ does not exist"):
        discover_runs(str(tmp_path), "train")


def test_video_round_trip_one_frame_per_tr(tmp_path, rng):
    frames = np.zeros((6, 48, 48, 3), np.uint8)
    for k in range(6):
        frames[k, :, :, k % 3] = 40 * k + 20   # one colour per frame, distinct levels
    path = str(tmp_path / "v.mp4")
    write_video(path, frames, fps=1 / 0.7)
    decoded = read_video(path, size=24, tr=0.7, backend="opencv")
    assert decoded.shape == (6, 24, 24, 3)
    means = decoded.reshape(6, -1, 3).mean(1)
    # RGB order survives (BGR->RGB) and every frame is the right one
    assert [int(np.argmax(m)) for m in means] == [k % 3 for k in range(6)]
    np.testing.assert_allclose(means.max(1), 40 * np.arange(6) + 20, atol=6)
    # a 2 fps video sampled every 0.7 s: frames at 0, 0.5, ... 2.5 s are at 0, 0.71, 1.43, 2.14,
    # 2.86, 3.57 output frames, rounded 0, 1, 1, 2, 3, 4; output k shows the last source frame
    # rounded to <= k -> frames 0, 2, 3, 4; the 3.0 s stream ends at 4.29 -> 4 output frames
    write_video(path, frames, fps=2.0)
    resampled = read_video(path, size=24, tr=0.7, backend="opencv")
    levels = resampled.reshape(len(resampled), -1, 3).mean(1).max(1)
    np.testing.assert_allclose(levels, 40 * np.array([0, 2, 3, 4]) + 20, atol=6)
    with pytest.raises(DataError, match="does not exist"):
        read_video(str(tmp_path / "none.mp4"))


def _index_coded(n, height=36, width=64):
    """Frames whose index is written as 8 black/white vertical bars (bit b = bar b)."""
    frames = np.zeros((n, height, width, 3), np.uint8)
    for i in range(n):
        for b in range(8):
            if (i >> b) & 1:
                frames[i, :, b * width // 8:(b + 1) * width // 8] = 255
    return frames


def _decode_index(frames):
    side = frames.shape[2]
    return [sum(1 << b for b in range(8) if f[:, int((b + 0.5) * side / 8)].mean() > 128)
            for f in frames]


def _fps_filter_by_hand(n, fps, tr=0.7):
    """ffmpeg's fps filter for frames k/fps: rounded output times, last frame rounded <= k."""
    from fractions import Fraction

    rate = Fraction(10, 7) if tr == 0.7 else Fraction(1) / Fraction(tr)
    times = [Fraction(k) / Fraction(fps).limit_denominator(1001) for k in range(n)]
    rounded = [int(t * rate + Fraction(1, 2)) for t in times]   # halves up (times are >= 0)
    end = int((times[-1] + times[1]) * rate + Fraction(1, 2))
    return [max(i for i, r in enumerate(rounded) if r <= k) for k in range(end)]


@pytest.mark.parametrize("fps", [24.0, 25.0, 30000 / 1001, 10 / 7])
def test_ffmpeg_and_opencv_pick_the_same_source_frame_for_every_tr(tmp_path, fps):
    n = 150
    path = str(tmp_path / "coded.webm")
    write_video(path, _index_coded(n), fps=fps)
    expected = _fps_filter_by_hand(n, fps)
    via_ffmpeg = _decode_index(read_video(path, 32, 0.7, backend="ffmpeg"))
    via_opencv = _decode_index(read_video(path, 32, 0.7, backend="opencv"))
    assert via_ffmpeg == expected
    assert via_opencv == expected
    if fps == 24.0:
        # 1.75 s (frame 42) is exactly 2.5 TRs: the tie goes up, so TR 2 still shows frame 41
        assert expected[2] == 41 and expected[3] == 58


def test_aspect_squash_or_crop_and_the_authors_webm(tmp_path):
    frames = np.zeros((20, 36, 64, 3), np.uint8)
    frames[:, :, :14, 0] = 255          # red bands at the sides of a 16:9 picture
    frames[:, :, -14:, 0] = 255
    frames[:, :, 14:-14, 1] = 255       # green centre, 36 px wide (the centred square)
    path = str(tmp_path / "wide.webm")
    write_video(path, frames, fps=25.0)
    squash = read_video(path, 32, 0.7)
    crop = read_video(path, 32, 0.7, aspect="crop")
    assert squash[:, :, :4, 0].mean() > 200 and squash[:, :, 14:18, 1].mean() > 200
    assert crop[:, :, 2:-2, 1].mean() > 200 and crop[:, :, 2:-2, 0].mean() < 40
    webm = read_video(path, 32, 0.7, reencode="webm")
    assert webm.shape == squash.shape
    assert np.abs(webm.astype(int) - squash).mean() < 12   # same frames, one more compression
    with pytest.raises(DataError, match=r"aspect: expected one of \['squash', 'crop'\], got 'pad'"):
        read_video(path, 32, 0.7, aspect="pad")


def test_damage_late_in_a_video_is_an_error_not_frames(tmp_path, rng):
    frames = (rng.random((100, 36, 64, 3)) * 255).astype(np.uint8)
    path = tmp_path / "v.webm"
    write_video(str(path), frames, fps=25.0)
    assert len(read_video(str(path), 32, 0.7, backend="ffmpeg")) == 6   # 4 s -> round(5.71)
    data = path.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: int(len(data) * 0.8)])      # the last fifth never arrived
    with pytest.raises(DataError, match=r"cut.webm: ffmpeg reported errors.*ended prematurely"):
        read_video(str(cut), 32, 0.7, backend="ffmpeg")
    mp4 = tmp_path / "v.mp4"
    write_video(str(mp4), frames, fps=25.0)
    damaged = bytearray(mp4.read_bytes())
    start = int(len(damaged) * 0.85)
    damaged[start:start + 300] = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(damaged))
    with pytest.raises(DataError, match=r"bad.mp4: ffmpeg reported errors"):
        read_video(str(bad), 32, 0.7, backend="ffmpeg")
