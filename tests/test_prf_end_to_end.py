"""`brain2pix estimate-rf` -> `prepare` -> `train` from a clean folder, on the simulator and on a
dataset in the vim-2 release's layout."""

import json
import os
import shutil

import h5py
import numpy as np
import pytest

from brain2pix_gluon.cli import main

from conftest import TINY, layered
from test_vim2 import N_TEST, vim2  # noqa: F401  (the module's fixture, reused)

TRAIN = ["train.epochs=1", "train.max_steps_per_epoch=2", "train.batch_size=2",
         "train.grid_samples=2"]


def _zscore(a):
    a = np.asarray(a, np.float64)
    return (a - a.mean(0)) / a.std(0)


@pytest.fixture(scope="module")
def sim_clean(tmp_path_factory):
    """A simulated raw dataset without its released centre files (they come from estimate-rf)."""
    from brain2pix_gluon.data.simulation import simulate_dataset

    from conftest import tiny_config

    config = tiny_config("simulation.n_train_runs=3", "simulation.volumes_per_run=150",
                         "simulation.n_voxels=60,40,40", "simulation.volumes_per_clip=40",
                         "simulation.n_repetitions=1",
                         # luminance voxels: prepare's retinotopy check reads the luminance at
                         # each centre, and on 60 cortex-like V1 voxels of 450 volumes its verdict
                         # is 'unclear' (cortex voxels follow contrast and colour more than it)
                         "simulation.drive=luminance")
    out = str(tmp_path_factory.mktemp("e2e_sim"))
    simulate_dataset(out, config.simulation, config.data, show_progress=False)
    for name in ("col_centers_112px.mat", "row_centers_112px.mat"):
        os.remove(os.path.join(out, name))
    return out


def test_simulator_estimate_prepare_train(sim_clean, tmp_path, capsys):
    from brain2pix_gluon.io.raw import load_roi_masks

    assert main(["prepare", sim_clean, str(tmp_path / "nothing"), "--no-progress", *TINY]) == 2
    assert "column RF centres not found" in capsys.readouterr().err
    assert main(["estimate-rf", sim_clean, "--no-progress", *TINY, "prf.r2_threshold=0.25"]) == 0
    prepared = str(tmp_path / "prepared")
    assert main(["prepare", sim_clean, prepared, "--no-progress", *TINY]) == 0
    est = np.load(os.path.join(sim_clean, "prf_estimates.npz"))
    masks = load_roi_masks(os.path.join(sim_clean, "roimask.mat"))
    # the default drive is the multi-feature one: a weight per feature and voxel is written
    from brain2pix_gluon.preprocessing.prf import FEATURES

    assert str(est["drive"]) == "features" and tuple(est["features"]) == FEATURES
    assert est["V1d_weights"].shape == (int(masks["V1d"].sum()), len(FEATURES))
    with h5py.File(os.path.join(prepared, "train.h5"), "r") as handle:
        # the prepared centres are the estimates above the threshold, dorsal then ventral
        for roi in ("V1", "V2", "V3"):
            expected = []
            for key in (roi + "d", roi + "v"):
                kept = est[f"{key}_r2"] >= 0.25
                expected.append(np.stack([est[f"{key}_x"][kept], est[f"{key}_y"][kept]], 1))
            np.testing.assert_allclose(handle[f"rf_centres/{roi}"][()], np.concatenate(expected),
                                       rtol=1e-6)
        # voxels of the first run: the kept V1 voxels of run_001, z-scored by hand
        signals = np.load(os.path.join(sim_clean, "train", "run_001.npy"))
        columns = np.concatenate([np.flatnonzero(masks[k])[est[f"{k}_r2"] >= 0.25]
                                  for k in ("V1d", "V1v")])
        n = signals.shape[0]
        np.testing.assert_allclose(handle["voxels/V1"][:n], _zscore(signals[:, columns]),
                                   atol=1e-4)
        assert json.loads(handle.attrs["retinotopy"])["verdict"] == "aligned"
    run = str(tmp_path / "run")
    assert main(["train", "--data", prepared, "--out", run, "--no-progress", *layered(TINY, TRAIN)]) == 0
    assert os.path.isdir(os.path.join(run, "checkpoints"))


def test_vim2_estimate_prepare_train(vim2, tmp_path, capsys):  # noqa: F811
    from brain2pix_gluon.io.vim2 import Vim2Dataset

    folder = str(tmp_path / "vim2")
    shutil.copytree(vim2["folder"], folder)
    # no data.tr: the TR is the release's (vim2.tr), recorded by prepare, read by train
    common = ["--no-progress", "data.dataset=vim2", "vim2.run_volumes=40", *TINY]
    assert main(["prepare", folder, str(tmp_path / "nothing"), *common]) == 2
    assert "run `brain2pix estimate-rf" in capsys.readouterr().err
    assert main(["estimate-rf", folder, *common, "prf.r2_threshold=0.2"]) == 0
    prepared = str(tmp_path / "prepared")
    assert main(["prepare", folder, prepared, *common]) == 0
    est = np.load(os.path.join(folder, "prf_estimates.npz"))
    members = Vim2Dataset(folder).masks
    shift, n_trs = 4, 5
    with h5py.File(os.path.join(prepared, "train.h5"), "r") as train, \
            h5py.File(os.path.join(prepared, "test.h5"), "r") as test:
        # three runs of 40 volumes; one frame per TR; frame t uses volumes t+4 ... t+8
        assert list(train["runs/n_volumes"][()]) == [40, 40, 40]
        assert train["samples"].shape[0] == 3 * (40 - shift - n_trs + 1)
        assert test["samples"].shape[0] == N_TEST - shift - n_trs + 1
        for roi in ("V1", "V2", "V3"):
            columns, centres = [], []
            for key in (roi + "lh", roi + "rh"):          # left hemisphere, then right
                kept = est[f"{key}_r2"] >= 0.2
                columns.append(np.flatnonzero(members[key])[kept])
                centres.append(np.stack([est[f"{key}_x"][kept], est[f"{key}_y"][kept]], 1))
            columns = np.concatenate(columns)
            np.testing.assert_allclose(train[f"rf_centres/{roi}"][()], np.concatenate(centres),
                                       rtol=1e-6)
            # the second training run is rt volumes 40-79, z-scored; the test set is rv as given
            np.testing.assert_allclose(train[f"voxels/{roi}"][40:80],
                                       _zscore(vim2["responses"][40:80][:, columns]), atol=1e-4)
            np.testing.assert_allclose(test[f"voxels/{roi}"][()], vim2["test"][:, columns],
                                       rtol=1e-5)
        report = json.loads(train.attrs["retinotopy"])
        assert report["kind"] == "hemisphere" and set(report["rois"]) == {"V1", "V2", "V3"}
        # the targets: the 15-Hz frame at each TR onset, warped (the fixture's frames are grey)
        from brain2pix_gluon.preprocessing.retina import fisheye_warp

        onset = vim2["frames"][::15][:32]          # run_001 keeps 32 frames; already 32 x 32
        expected = fisheye_warp(onset.astype(np.float32) / 255.0)
        got = train["frames"][:32].astype(np.float32).transpose(0, 2, 3, 1)
        assert np.abs(got - expected).max() < 0.02
    # another run length is another dataset: not skipped as up to date
    longer = [a if a != "vim2.run_volumes=40" else "vim2.run_volumes=60" for a in common]
    assert main(["prepare", folder, prepared, *longer]) == 0
    with h5py.File(os.path.join(prepared, "train.h5"), "r") as train:
        assert list(train["runs/n_volumes"][()]) == [60, 60]
        assert json.loads(train.attrs["config"])["vim2"]["run_volumes"] == 60
        assert json.loads(train.attrs["config"])["tr"] == 1.0
    capsys.readouterr()
    figure = str(tmp_path / "coverage.png")
    assert main(["inspect", prepared, "--figure", figure]) == 0
    assert "retinotopy by hemisphere" in capsys.readouterr().out
    assert os.path.getsize(figure) > 1000
    # train refuses a TR other than the recording's, and takes the recording's by default
    capsys.readouterr()
    refused = str(tmp_path / "refused")
    assert main(["train", "--data", prepared, "--out", refused, *common[:1],
                 *layered(TINY, TRAIN), "data.tr=0.7"]) == 2
    assert ("data.tr: the prepared data" in capsys.readouterr().err
            and not os.path.exists(os.path.join(refused, "checkpoints")))
    run = str(tmp_path / "run")
    assert main(["train", "--data", prepared, "--out", run, *common[:1], *layered(TINY, TRAIN)]) == 0
    assert os.path.isdir(os.path.join(run, "checkpoints"))
    import yaml

    with open(os.path.join(run, "config.yaml")) as handle:
        assert yaml.safe_load(handle)["data"]["tr"] == 1.0
