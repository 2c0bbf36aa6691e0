"""The fast prepare (read-ahead thread, background HDF5 writer, run-at-once warp and rendering)
writes the arrays of a straightforward computation from the files, in the same order."""

import glob
import os

import h5py
import numpy as np
import pytest

from brain2pix_gluon.errors import DataError
from brain2pix_gluon.io.prepared import PreparedWriter, array_checksums
from brain2pix_gluon.io.video import read_video
from brain2pix_gluon.io.matlab import read_mat
from brain2pix_gluon.preprocessing.prepare import prepare_dataset
from brain2pix_gluon.preprocessing.receptive_fields import render_dense_reference
from brain2pix_gluon.preprocessing.retina import fisheye_warp_reference


def _direct_split(raw_dir, config, split):
    """One split computed here from the files, by the method's definitions, without the
    pipeline's functions: masks and centres read from the .mat files, signals from the .npy runs
    (test clips: repetitions averaged; training runs: z-scored per voxel), each ROI's voxels = the
    mask voxels with a finite centre (dorsal then ventral), frame t paired with volumes
    t + shift ... t + shift + n_trs - 1 (frames whose window passes the run's end dropped), the
    targets warped by the authors' routine (``fisheye_warp_reference``) and the RFSimages by
    eq. 2 as their code computes it (``render_dense_reference``, a one-hot image per voxel) with
    the centre -> pixel rule written out. Only the video decoding is shared with prepare.
    """
    data = config.data
    size = data.image_size
    masks = {k: np.asarray(v).reshape(-1) != 0
             for k, v in read_mat(os.path.join(raw_dir, "roimask.mat")).items()}
    cols, rows = (read_mat(os.path.join(raw_dir, f"{axis}_centers_112px.mat"))
                  for axis in ("col", "row"))
    columns, cells = {}, {}
    for roi in data.rois:
        cols_roi, cells_roi = [], []
        for key in (roi + "d", roi + "v"):
            x, y = (np.asarray(c[key], float).reshape(-1) for c in (cols, rows))
            finite = np.isfinite(x) & np.isfinite(y)
            cols_roi.append(np.flatnonzero(masks[key])[finite])
            # aligned layout: map row from y, map column from x, S cells over [-0.5, 0.5)
            cells_roi.append(np.stack([np.floor((y[finite] + 0.5) * size),
                                       np.floor((x[finite] + 0.5) * size)]).astype(int))
        columns[roi], cells[roi] = np.concatenate(cols_roi), np.concatenate(cells_roi, axis=1)
    folder = os.path.join(raw_dir, split)
    runs = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.npy"))):
        stem = os.path.basename(path)[:-4]
        runs.setdefault(stem.split("_rep_")[0], []).append(np.load(path).astype(np.float64))
    frames, rf_images, voxels = [], [], {roi: [] for roi in data.rois}
    for name, reps in sorted(runs.items()):
        signals = np.mean(reps, axis=0)
        if split == "train":
            signals = (signals - signals.mean(0)) / np.where(signals.std(0) > 0, signals.std(0), 1)
        video_path, = (p for p in glob.glob(os.path.join(folder, name + ".*"))
                       if not p.endswith(".npy"))
        video = read_video(video_path, size, data.tr, data.video_backend, data.video_aspect,
                           data.reencode)
        n_samples = min(len(video), len(signals) - data.shift - data.n_trs + 1)
        for frame in video[:n_samples]:
            warped = fisheye_warp_reference(frame.astype(np.float64) / 255.0, data.max_ratio)
            frames.append(warped.transpose(2, 0, 1).astype(np.float16))
        roi_voxels = {roi: signals[:, columns[roi]].astype(np.float32) for roi in data.rois}
        rf_images.append(np.stack([render_dense_reference(roi_voxels[roi], *cells[roi], size)
                                   for roi in data.rois], axis=1))
        for roi in data.rois:
            voxels[roi].append(roi_voxels[roi])
    out = {"frames": np.stack(frames), "rf_images": np.concatenate(rf_images)}
    out.update({f"voxels/{roi}": np.concatenate(v) for roi, v in voxels.items()})
    return out


def test_fast_prepare_writes_the_arrays_of_a_direct_computation(raw_dir, tmp_path, config):
    fast = prepare_dataset(raw_dir, str(tmp_path / "fast"), config, show_progress=False)
    serial = prepare_dataset(raw_dir, str(tmp_path / "serial"), config, show_progress=False,
                             pipeline=False)
    for split in ("train", "test"):
        # every dataset (frames, RFSimages, voxels, samples, run table, centres): same arrays
        assert array_checksums(fast[split]) == array_checksums(serial[split])
        expected = _direct_split(raw_dir, config, split)
        with h5py.File(fast[split], "r") as f:
            for key, values in expected.items():
                stored = f[key][()]
                assert stored.dtype == values.dtype and stored.shape == values.shape, key
                # rows in the runs' order; float16 frames within their rounding (2^-11 near 1)
                atol = 2e-3 if key == "frames" else 1e-5
                np.testing.assert_allclose(stored.astype(np.float64), values.astype(np.float64),
                                           rtol=1e-5, atol=atol, err_msg=key)
            assert all(f[key].fletcher32 for key in expected)


def test_a_failed_background_write_removes_the_partial_file(tmp_path):
    path = str(tmp_path / "train.h5")
    writer = PreparedWriter(path, ["V1"], [3], {"V1": np.zeros((3, 2))}, 4, {}, "lzf",
                            background=True)
    ok = (np.zeros((2, 3, 4, 4), np.float16), np.zeros((3, 1, 4, 4), np.float32),
          {"V1": np.zeros((3, 3), np.float32)}, np.arange(2), np.arange(2), 0)
    writer.add_run("run_a", *ok)
    bad_frames = np.zeros((2, 3, 5, 5), np.float16)     # wrong frame size: h5py refuses it
    writer.add_run("run_b", bad_frames, *ok[1:])
    with pytest.raises((TypeError, ValueError, DataError)):
        writer.close()                                  # the worker's error comes out here
    assert os.listdir(tmp_path) == []
