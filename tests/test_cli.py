import json
import os

import h5py
import numpy as np
import pytest

from brain2pix_gluon.cli import main
from brain2pix_gluon.io.reconstructions import read_reconstructions

from conftest import TINY, layered

SIM = [o for o in TINY if o.startswith(("simulation.", "data."))]


def test_simulate_prepare_inspect(tmp_path, capsys):
    raw, prepared = str(tmp_path / "raw"), str(tmp_path / "prepared")
    assert main(["simulate", "--out", raw, "--no-progress"]
                + layered(SIM, ["simulation.n_train_runs=1"])) == 0
    assert sorted(os.listdir(raw)) == ["col_centers_112px.mat", "labels.npz", "roimask.mat",
                                       "row_centers_112px.mat", "test", "train", "truth.npz",
                                       "truth_signals.npz"]
    assert main(["prepare", raw, "--out", prepared, "--no-progress"] + SIM) == 0
    # the earlier positional spelling still works (here: finds the splits up to date)
    assert main(["prepare", raw, prepared, "--no-progress"] + SIM) == 0
    capsys.readouterr()
    assert main(["inspect", "--data", prepared]) == 0
    out = capsys.readouterr().out
    assert "== " in out and "/rf_images" in out and "MB per 1,000 samples" in out
    assert "shift 4, window 5 TRs" in out and "rf_layout aligned" in out
    assert "V1: dorsal" in out and "verdict: aligned" in out and "WARNING" not in out
    figure = str(tmp_path / "coverage.png")
    assert main(["inspect", prepared, "--figure", figure]) == 0
    with open(figure, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["inspect", os.path.join(prepared, "test.h5"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    with np.load(os.path.join(raw, "truth.npz")) as truth:
        clip_frames = int(truth["run_frames"][list(truth["run_names"]).index("clip_01")])
    assert info["split"] == "test" and info["n_samples"] == clip_frames


def test_one_grammar(tmp_path, capsys):
    """Outputs are --out, prepared data --data; --profile only where a profile changes something;
    --experiment only a table group; every option says what it does."""
    from brain2pix_gluon.cli import build_parser

    for argv in (["prepare", "RAW", "--out", "OUT", "--profile", "quick"],     # no profile here
                 ["simulate", "--out", "OUT", "--profile", "quick"],
                 ["baseline", "nishimoto", "--data", "D", "--out", "O", "--profile", "quick"],
                 ["train", "--data", "D"],                                   # --out is required
                 ["evaluate", "R.h5", "--out", "O", "--experiment", "ablations"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2, argv
    assert "invalid choice: 'ablations'" in capsys.readouterr().err
    assert main(["prepare", "RAW", "OUT", "--out", "ELSEWHERE"]) == 2
    assert "--out: given twice" in capsys.readouterr().err
    assert main(["simulate"]) == 2
    assert "--out DIR is required" in capsys.readouterr().err
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for action in parser._actions + [a for p in commands.values() for a in p._actions]:
        if action.option_strings and action.dest != "help":
            assert action.help, action.option_strings


def test_errors_are_reported_with_exit_code_2(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "missing"), str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "brain2pix prepare: error:" in err and "missing is not a directory" in err
    assert main(["inspect", str(tmp_path)]) == 2
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                 "train.bogus=1"]) == 2
    assert "unknown key 'bogus'" in capsys.readouterr().err


def test_train_reconstruct_evaluate_tables(prepared_dir, tmp_path, capsys):
    run = str(tmp_path / "run")
    args = ["train", "--data", prepared_dir, "--out", run, "--no-progress", "--profile", "quick",
            "train.max_steps_per_epoch=2"] + [o for o in TINY if o != "train.epochs=1"]
    assert main(args + ["train.epochs=1"]) == 0
    saved = json.load(open(os.path.join(run, "run.json")))
    assert {"QUICK RUN", "RANDOM FEATURE-LOSS WEIGHTS (VGG-19)"} <= set(saved["marks"])
    assert main(args + ["train.epochs=1"]) == 2     # a second run into that folder: --resume
    assert "pass --resume" in capsys.readouterr().err
    assert main(args + ["--resume", "train.epochs=2"]) == 0
    assert len(open(os.path.join(run, "log.jsonl")).readlines()) == 2

    out = str(tmp_path / "recon")
    assert main(["reconstruct", run, "--data", prepared_dir, "--out", out, "--no-progress"]) == 0
    data = read_reconstructions(os.path.join(out, "reconstructions.h5"))
    with h5py.File(os.path.join(prepared_dir, "test.h5"), "r") as f:
        assert (data["samples"] == f["samples"][()]).all()
        n_test = f["samples"].shape[0]
    assert data["reconstructions"].shape == data["targets"].shape == (n_test, 3, 32, 32)
    assert "NOT pretrained" in data["attrs"]["weights"]["feature_loss"]
    assert data["attrs"]["profile"] == "quick" and data["attrs"]["epoch"] == 2
    # the videos hold every test sample as input | reconstruction | ground truth (32 px + 2 px
    # gaps), at one frame per TR; the ground-truth panel is the target frame
    from PIL import Image, ImageSequence

    with Image.open(os.path.join(out, "reconstructions.gif")) as gif:
        frames = [np.asarray(f.convert("RGB"), np.float32) / 255 for f in ImageSequence.Iterator(gif)]
        assert gif.info["duration"] == round(1000 * 0.7)
    assert len(frames) == n_test and frames[0].shape == (32, 3 * 32 + 2 * 2, 3)
    truth = data["targets"][0].transpose(1, 2, 0)
    assert np.abs(frames[0][:, 2 * 34:] - truth).mean() < 0.03       # GIF palette rounding
    import cv2

    video = cv2.VideoCapture(os.path.join(out, "reconstructions.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == n_test
    assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(1 / 0.7, rel=1e-3)
    video.release()

    results = str(tmp_path / "results")
    assert main(["evaluate", os.path.join(out, "reconstructions.h5"), "--out", results + "/full",
                 "--experiment", "ablation", "--label", "Full", "--no-progress",
                 "evaluation.feature_weights=random", "evaluation.max_frames=4"]) == 0
    printed = capsys.readouterr().out
    assert "RANDOM EVALUATION WEIGHTS" in printed and "alexnet_pool2_r" in printed
    assert main(["tables", results]) == 0
    assert "Table 5. Ablation experiment: correlation" in capsys.readouterr().out


def test_the_hint_for_missing_prepared_data_is_a_command_the_cli_takes(tmp_path):
    """The error names a `brain2pix prepare` line that the command line actually parses."""
    import re

    from brain2pix_gluon.cli import build_parser
    from brain2pix_gluon.errors import DataError
    from brain2pix_gluon.io.prepared import open_prepared

    with pytest.raises(DataError) as caught:
        open_prepared(str(tmp_path / "nowhere.h5"))
    command = re.search(r"`brain2pix ([^`]+)`", str(caught.value)).group(1).split()
    args = build_parser().parse_args(command)
    assert args.command == "prepare" and args.dataset == "RAW" and args.out == "OUT"
