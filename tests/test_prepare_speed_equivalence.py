"""The fast prepare (read-ahead thread, background HDF5 writer, run-at-once warp and rendering)
writes exactly the arrays of a straightforward computation, in the same order."""

import os

import h5py
import numpy as np
import pytest

from brain2pix_gluon.errors import DataError
from brain2pix_gluon.io.prepared import PreparedWriter, array_checksums
from brain2pix_gluon.io.video import read_video
from brain2pix_gluon.io.sources import open_source
from brain2pix_gluon.preprocessing.prepare import RoiInputs, prepare_dataset
from brain2pix_gluon.preprocessing.retina import cached_warp
from brain2pix_gluon.preprocessing.signals import plan_run


def _direct_split(raw_dir, config, split):
    """One split computed the plain way: frame by frame, channel by channel, volume by volume.

    The warp and the eq. 2 rendering are applied as one sparse matrix-vector product per frame
    channel and per volume (each output value sums its terms in the operator's order), the runs
    concatenated in the order of the raw directory.
    """
    raw = RoiInputs(open_source(raw_dir, config))
    data = config.data
    warp = cached_warp(data.image_size, data.max_ratio)
    operator = warp.operator * np.float32(1.0 / 255.0)
    frames, rf_images, voxels = [], [], {roi: [] for roi in data.rois}
    for run in raw.source.runs(split):
        signals = raw.load_signals(run, split)
        video = read_video(run["video"], data.image_size, data.tr, data.video_backend,
                           data.video_aspect, data.reencode)
        plan = plan_run(video.shape[0], signals.shape[0], data.shift, data.n_trs, data.tr,
                        data.max_unused_s)
        for frame in video[: plan["frames"].size]:
            channels = [operator @ frame[:, :, c].reshape(-1).astype(np.float32)
                        for c in range(frame.shape[2])]
            frames.append(np.stack(channels).reshape(-1, data.image_size, data.image_size)
                          .astype(np.float16))
        roi_voxels = raw.roi_voxels(signals, run["signals"][0])
        for t in range(signals.shape[0]):
            rf_images.append(np.stack([
                (raw.mappers[roi].operator @ roi_voxels[roi][t]).reshape(data.image_size,
                                                                         data.image_size)
                for roi in data.rois]))
        for roi in data.rois:
            voxels[roi].append(roi_voxels[roi])
    out = {"frames": np.stack(frames), "rf_images": np.stack(rf_images)}
    out.update({f"voxels/{roi}": np.concatenate(v) for roi, v in voxels.items()})
    return out


def _bits(values):
    values = np.ascontiguousarray(values)
    return values.view(np.uint16 if values.dtype == np.float16 else np.uint32)


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
                # bit for bit (float16 frames included), rows in the runs' order
                np.testing.assert_array_equal(_bits(stored), _bits(values), err_msg=key)
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
