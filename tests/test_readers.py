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
    with pytest.raises(DataError, match=r"r.mat, key 'V1d': expected 2 values .* or 12 .*got 5"):
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
    # a 2 fps video sampled every 0.7 s keeps the frames nearest to each TR onset
    write_video(path, frames, fps=2.0)
    resampled = read_video(path, size=24, tr=0.7, backend="opencv")
    # onsets 0, 0.7, 1.4, 2.1 s -> source frames 0, 1, 3, 4 (at 0, 0.5, 1.5, 2.0 s)
    levels = resampled.reshape(len(resampled), -1, 3).mean(1).max(1)
    np.testing.assert_allclose(levels, 40 * np.array([0, 1, 3, 4]) + 20, atol=6)
    with pytest.raises(DataError, match="does not exist"):
        read_video(str(tmp_path / "none.mp4"))
