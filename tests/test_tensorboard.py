"""TensorBoard event files written while training, read back with TensorBoard's own reader:
every loss term per iteration, held-out metrics and an image grid per epoch, the marks in the
run's name, a resumed run without duplicated steps, and ``train.tensorboard=false``."""

import glob
import json
import os
import time

import numpy as np
import pytest

from brain2pix_gluon.training.trainer import Trainer

from conftest import tiny_config

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="TensorBoard's reader is not installed (pip install -e \".[test]\")")

SETTINGS = ("train.epochs=2", "train.max_steps_per_epoch=3", "train.grid_samples=2",
            "name=tb_run")
TERMS = ("d", "g", "pixel", "adversarial", "feature")


def _read(run_dir):
    """The one TensorBoard run under RUN/tensorboard: (its name, an EventAccumulator)."""
    [folder] = glob.glob(os.path.join(run_dir, "tensorboard", "*"))
    acc = event_accumulator.EventAccumulator(folder, size_guidance={"scalars": 0, "images": 0,
                                                                    "tensors": 0})
    acc.Reload()
    return os.path.basename(folder), acc


def _steps(acc, tag):
    return [e.step for e in acc.Scalars(tag)]


def _trainer(prepared_dir, run_dir, *extra):
    train, test = (os.path.join(prepared_dir, f) for f in ("train.h5", "test.h5"))
    return Trainer(tiny_config(*SETTINGS, *extra), train, str(run_dir), test,
                   show_progress=False)


def _corr(a, b):
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


def test_losses_per_iteration_metrics_and_frames_per_epoch(prepared_dir, tmp_path):
    from brain2pix_gluon.evaluation.metrics import fisheye_valid_mask
    from brain2pix_gluon.io.reconstructions import read_reconstructions
    from brain2pix_gluon.training.inference import reconstruct

    run = tmp_path / "run"
    trainer = _trainer(prepared_dir, run)
    assert trainer.fit() == "complete"
    name, acc = _read(run)
    # the marks in the run's name
    assert name == "tb_run -- RANDOM FEATURE-LOSS WEIGHTS (VGG-19)"
    scalars = set(acc.Tags()["scalars"])
    assert {f"loss/{t}" for t in TERMS} <= scalars
    for term in TERMS:
        assert _steps(acc, f"loss/{term}") == [1, 2, 3, 4, 5, 6], term
    for tag in ("test/pixel", "heldout/pixcorr_valid_field",
                "heldout/twoway_identification_pixels", "train/lr"):
        assert _steps(acc, tag) == [3, 6], tag
    # the per-iteration losses average to the epoch means of log.jsonl (summed another way)
    log = [json.loads(line) for line in open(run / "log.jsonl")]
    for epoch, record in enumerate(log):
        for term in TERMS:
            values = [e.value for e in acc.Scalars(f"loss/{term}")][3 * epoch:3 * epoch + 3]
            assert np.mean(values) == pytest.approx(record["train"][term], rel=1e-5)
        assert acc.Scalars("test/pixel")[epoch].value == pytest.approx(record["test"]["pixel"],
                                                                        rel=1e-5)
    # the last held-out metrics, by hand from the final generator's reconstructions of the
    # (27, fewer than 256: all) test frames
    recon = read_reconstructions(reconstruct(str(run), prepared_dir, str(tmp_path / "recon"),
                                             show_progress=False)["h5"])
    fakes, targets = recon["reconstructions"], recon["targets"]
    mask = fisheye_valid_mask(targets.shape[-1], 10.0)
    inside = [(f[:, mask], t[:, mask]) for f, t in zip(fakes, targets)]
    by_hand = np.mean([_corr(f, t) for f, t in inside])
    assert acc.Scalars("heldout/pixcorr_valid_field")[-1].value == pytest.approx(by_hand,
                                                                                  abs=1e-4)
    n = len(inside)
    wins = [np.mean([_corr(inside[i][0], inside[i][1]) > _corr(inside[i][0], inside[j][1])
                     for j in range(n) if j != i]) for i in range(n)]
    assert acc.Scalars("heldout/twoway_identification_pixels")[-1].value == \
        pytest.approx(np.mean(wins), abs=1e-4)
    # an image grid per epoch: 2 rows of input | reconstruction | ground truth
    assert acc.Tags()["images"] == ["heldout/frames"]
    images = acc.Images("heldout/frames")
    assert [i.step for i in images] == [3, 6]
    size = targets.shape[-1]
    assert (images[0].height, images[0].width) == (2 * (size + 2), 3 * size + 4)
    assert "run/text_summary" in acc.Tags()["tensors"]     # the run's name, marks and folder as text


def test_a_resumed_run_appends_without_duplicated_steps(prepared_dir, tmp_path):
    """Stopped after 4 iterations (checkpoint at step 4), then events of steps 5 and 6 written
    as by a process killed before its next checkpoint; the resumed run hides them and writes
    every step once."""
    from tensorboardX import SummaryWriter

    run = tmp_path / "run"
    assert _trainer(prepared_dir, run).fit(stop_after_steps=4) == "interrupted"
    _, acc = _read(run)
    assert _steps(acc, "loss/g") == [1, 2, 3, 4]
    [folder] = glob.glob(os.path.join(run, "tensorboard", "*"))
    stale = SummaryWriter(folder, filename_suffix=f".{time.time_ns():020d}")
    for step in (5, 6):
        stale.add_scalar("loss/g", 999.0, step)
    stale.close()

    resumed = _trainer(prepared_dir, run)
    assert resumed.resume() and resumed.global_step == 4
    assert resumed.fit() == "complete"
    _, acc = _read(run)
    for term in TERMS:
        assert _steps(acc, f"loss/{term}") == [1, 2, 3, 4, 5, 6], term
    assert 999.0 not in [e.value for e in acc.Scalars("loss/g")]
    assert _steps(acc, "heldout/pixcorr_valid_field") == [3, 6]
    assert len(glob.glob(os.path.join(folder, "events.out.tfevents.*"))) == 3


def test_tensorboard_false_writes_nothing(prepared_dir, tmp_path):
    run = tmp_path / "run"
    assert _trainer(prepared_dir, run, "train.tensorboard=false").fit() == "complete"
    assert not os.path.exists(run / "tensorboard")
    assert os.path.exists(run / "log.jsonl")


def test_writers_opened_in_the_same_second_keep_their_own_files(tmp_path):
    """tensorboardX names event files by the second and opens them with "wb": a resume within
    the same second must not wipe the first run's file."""
    from brain2pix_gluon.training.tensorboard import TensorBoardLog

    first = TensorBoardLog(tmp_path / "run")
    first.add_step(1, {"g": 1.0})
    first.close()
    second = TensorBoardLog(tmp_path / "run", resume_step=1)
    second.add_step(2, {"g": 2.0})
    second.close()
    assert len(glob.glob(str(tmp_path / "run" / "events.out.tfevents.*"))) == 2
    acc = event_accumulator.EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss/g")] == [(1, 1.0), (2, 2.0)]
