import json
import os
import shutil

import h5py
import numpy as np
import pytest
from scipy import io as sio

from brain2pix_gluon.errors import DataError
from brain2pix_gluon.io.prepared import describe_prepared, open_prepared
from brain2pix_gluon.io.raw import load_run
from brain2pix_gluon.io.video import read_video
from brain2pix_gluon.preprocessing import prepare as prepare_module
from brain2pix_gluon.io.sources import open_source
from brain2pix_gluon.preprocessing.prepare import RoiInputs, prepare_dataset
from brain2pix_gluon.preprocessing.retina import fisheye_warp


def _truth_runs(raw_dir):
    with np.load(os.path.join(raw_dir, "truth.npz")) as truth:
        return dict(zip(truth["run_names"].tolist(), truth["run_frames"].tolist()))


def test_layout_sizes_and_provenance(raw_dir, prepared_dir, config):
    sim = config.simulation
    frames = _truth_runs(raw_dir)     # frames each video decodes to at one per TR
    train = [frames[f"run_{i + 1:03d}"] for i in range(sim.n_train_runs)]
    with open_prepared(os.path.join(prepared_dir, "train.h5")) as f:
        # the runs scan 10-20 s past their videos: every frame gets a full window
        assert f["samples"].shape == (sum(train), 5)
        assert f["rf_images"].shape == (sim.n_train_runs * sim.volumes_per_run, 3, 32, 32)
        assert f["frames"].shape == (sum(train), 3, 32, 32)
        samples = f["samples"][()]
        # frame t of a run uses volumes t+4 ... t+8 of the same run
        np.testing.assert_array_equal(samples[:, 2], samples[:, 1] + 4)
        np.testing.assert_array_equal(samples[:, 4] - samples[:, 2],
                                      np.repeat([0, sim.volumes_per_run], train))
        assert json.loads(f.attrs["config"])["shift"] == 4
        sources = json.loads(f.attrs["sources"])
        assert "roimask.mat" in sources and len(sources["roimask.mat"]) == 64
        assert f.attrs["n_dropped"] == 0
        assert json.loads(f.attrs["retinotopy"])["verdict"] == "aligned"
    info = describe_prepared(os.path.join(prepared_dir, "test.h5"))
    assert info["runs"] == ["clip_01"] and info["n_samples"] == frames["clip_01"]


def test_simulated_raw_data_are_shaped_like_the_release(raw_dir, config):
    import cv2

    capture = cv2.VideoCapture(os.path.join(raw_dir, "train", "run_001.webm"))
    assert capture.get(cv2.CAP_PROP_FRAME_WIDTH) / capture.get(cv2.CAP_PROP_FRAME_HEIGHT) == 16 / 9
    n_native = 0
    while capture.read()[0]:
        n_native += 1
    capture.release()
    n_tr = _truth_runs(raw_dir)["run_001"]
    # 25 frames per second, not one per TR (17.5 source frames per TR)
    assert abs(n_native / n_tr - 25 * 0.7) < 1.0
    # the scan goes on 10-20 s after the video (at least 14 volumes)
    assert config.simulation.volumes_per_run - n_tr >= 14
    with open(os.path.join(raw_dir, "roimask.mat"), "rb") as handle:
        assert handle.read(10) == b"MATLAB 5.0"
    x, y = (sio.loadmat(os.path.join(raw_dir, f"{a}_centers_112px.mat"))["V1d"].ravel()
            for a in ("col", "row"))
    finite = np.isfinite(x)
    # on the 112-px grid, dorsal V1 in the lower visual field (y > 0)
    np.testing.assert_allclose((x[finite] + 0.5) * 112, np.round((x[finite] + 0.5) * 112), atol=1e-9)
    assert np.mean(y[finite] > 0) > 0.9


def test_stored_arrays_are_what_the_pipeline_defines(raw_dir, prepared_dir, config):
    raw = RoiInputs(open_source(raw_dir, config))
    run = raw.source.runs("test")[0]
    reps = [load_run(p) for p in run["signals"]]
    assert len(reps) == config.simulation.n_repetitions
    averaged = np.mean(reps, axis=0)             # test data: repetitions averaged, not z-scored
    voxels = raw.roi_voxels(averaged, "test")
    frames = read_video(run["video"], 32, 0.7)
    with open_prepared(os.path.join(prepared_dir, "test.h5")) as f:
        np.testing.assert_allclose(f["voxels/V2"][()], voxels["V2"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(f["rf_images"][:, 1], raw.mappers["V2"].render(voxels["V2"]),
                                   atol=1e-5)
        warped = fisheye_warp(frames[:3].astype(np.float32) / 255.0)
        np.testing.assert_allclose(f["frames"][:3], warped.transpose(0, 3, 1, 2), atol=2e-3)


def test_training_runs_are_zscored_per_run(prepared_dir):
    with open_prepared(os.path.join(prepared_dir, "train.h5")) as f:
        v1 = f["voxels/V1"][()]
        n = f["runs/n_volumes"][0]
    np.testing.assert_allclose(v1[:n].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(v1[n:].std(0), 1, atol=1e-3)


@pytest.fixture(scope="module")
def luminance_prepared(tmp_path_factory):
    """The tiny dataset with voxels that follow their pRF's luminance alone (a known truth)."""
    from brain2pix_gluon.data.simulation import simulate_dataset

    from conftest import tiny_config

    config = tiny_config("simulation.drive=luminance")
    raw = str(tmp_path_factory.mktemp("luminance") / "raw")
    simulate_dataset(raw, config.simulation, config.data, show_progress=False)
    out = str(tmp_path_factory.mktemp("luminance_prepared"))
    prepare_dataset(raw, out, config, show_progress=False)
    return out


def test_rf_images_carry_the_stimulus_at_the_hemodynamic_delay(luminance_prepared):
    """V1's RFSimages must correlate with the frame's luminance at its RF pixels (what these
    simulated voxels respond to), and far better at the aligned window than at a wrong
    alignment."""
    from brain2pix_gluon.data import RFSImageDataset

    ds = RFSImageDataset(os.path.join(luminance_prepared, "train.h5"))
    mask = ds.rf_masks[0] > 0
    lum = np.stack([ds[i][1].mean(0)[mask] for i in range(len(ds))])
    rf = np.stack([ds[i][0][4][mask] for i in range(len(ds))])   # V1, 5th TR of the window

    def mean_corr(a, b):
        a, b = a - a.mean(0), b - b.mean(0)
        return np.nanmean((a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0)))

    aligned = mean_corr(rf, lum)
    shifted = mean_corr(rf[:-10], lum[10:])
    assert aligned > 0.3
    assert aligned > shifted + 0.2


def test_rerun_skips_up_to_date_splits(raw_dir, prepared_dir, config):
    path = os.path.join(prepared_dir, "train.h5")
    before = os.stat(path).st_mtime_ns
    prepare_dataset(raw_dir, prepared_dir, config, show_progress=False)
    assert os.stat(path).st_mtime_ns == before


def test_interrupted_prepare_leaves_nothing_that_looks_complete(raw_dir, tmp_path, config, monkeypatch):
    out = str(tmp_path / "prep")
    original = prepare_module._prepare_run
    calls = []

    def failing(raw, run, split, writer):
        calls.append(run["name"])
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated Ctrl-C")
        return original(raw, run, split, writer)

    monkeypatch.setattr(prepare_module, "_prepare_run", failing)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(raw_dir, out, config, show_progress=False)
    assert not os.path.exists(out)          # the folder it made is gone with its partial files
    monkeypatch.setattr(prepare_module, "_prepare_run", original)
    written = prepare_dataset(raw_dir, out, config, show_progress=False)
    assert sorted(written) == ["test", "train"]
    with pytest.raises(DataError, match="does not exist"):
        open_prepared(os.path.join(out, "nothing.h5"))


def _copy_raw(raw_dir, tmp_path):
    dst = str(tmp_path / "raw")
    shutil.copytree(raw_dir, dst)
    return dst


def test_masks_that_do_not_match_the_runs(raw_dir, tmp_path, config):
    raw = _copy_raw(raw_dir, tmp_path)
    masks = sio.loadmat(os.path.join(raw, "roimask.mat"))
    sio.savemat(os.path.join(raw, "roimask.mat"),
                {k: np.vstack([v, [[0]]]) for k, v in masks.items() if not k.startswith("__")})
    with pytest.raises(DataError, match=r"run_001.npy: expected \d+ voxels .*got signals of shape"):
        prepare_dataset(raw, str(tmp_path / "out"), config, show_progress=False)
    assert not os.path.exists(tmp_path / "out" / "train.h5")


def test_nan_voxels_and_wrongly_paired_videos(raw_dir, tmp_path, config):
    raw = _copy_raw(raw_dir, tmp_path)
    masks = sio.loadmat(os.path.join(raw, "roimask.mat"))
    in_roi = int(np.flatnonzero(masks["V1d"].ravel())[0])
    outside = int(np.flatnonzero(~np.any([masks[k].ravel() for k in masks if k[0] == "V"], 0))[0])
    path = os.path.join(raw, "train", "run_002.npy")
    signals = np.load(path)
    good = signals.copy()
    signals[10, outside] = np.nan           # outside every ROI: not used, not an error
    np.save(path, signals)
    prepare_dataset(raw, str(tmp_path / "ok"), config, splits=("train",), show_progress=False)
    signals[10, in_roi] = np.inf
    np.save(path, signals)
    with pytest.raises(DataError, match=rf"run_002.npy: expected finite values in the ROI voxels"
                                        rf".*volume 10, brain voxel {in_roi}"):
        prepare_dataset(raw, str(tmp_path / "out"), config, show_progress=False)
    np.save(path, np.concatenate([good] * 3))   # a run three times as long as its video
    with pytest.raises(DataError, match=r"run 'run_002' is far longer than its video .*run_002.webm: "
                                        r"180 volumes"):
        prepare_dataset(raw, str(tmp_path / "out"), config, show_progress=False)
    np.save(path, good[:30])                   # a run much shorter than its video
    with pytest.raises(DataError, match=r"run_002.webm is longer than run 'run_002' can serve"):
        prepare_dataset(raw, str(tmp_path / "out"), config, show_progress=False)
    assert not os.path.exists(tmp_path / "out" / "train.h5")


def test_centres_outside_the_range(raw_dir, tmp_path, config):
    raw = _copy_raw(raw_dir, tmp_path)
    rows = sio.loadmat(os.path.join(raw, "row_centers_112px.mat"))
    rows["V3v"][0, 0] = 0.75
    sio.savemat(os.path.join(raw, "row_centers_112px.mat"),
                {k: v for k, v in rows.items() if not k.startswith("__")})
    # a bad row (y) centre is reported in the row file, not in the column file
    with pytest.raises(DataError, match=r"RF centre y in .*row_centers_112px.mat.*\[-0.5, 0.5\).*0.75"):
        prepare_dataset(raw, str(tmp_path / "out"), config, show_progress=False)


def test_truncated_and_incomplete_prepared_files(prepared_dir, tmp_path):
    src = os.path.join(prepared_dir, "test.h5")
    truncated = tmp_path / "test.h5"
    truncated.write_bytes(open(src, "rb").read()[:5000])
    with pytest.raises(DataError, match=r"test.h5 is not a readable HDF5 file"):
        open_prepared(str(truncated))
    incomplete = tmp_path / "inc.h5"
    shutil.copy(src, incomplete)
    with h5py.File(incomplete, "a") as f:
        f.attrs["complete"] = False
    with pytest.raises(DataError, match="complete is False"):
        open_prepared(str(incomplete))
    with h5py.File(incomplete, "a") as f:
        f.attrs["complete"] = True
        del f["voxels/V2"]
    with pytest.raises(DataError, match=r"/voxels/V2 expected \d+ rows, got missing"):
        open_prepared(str(incomplete))
