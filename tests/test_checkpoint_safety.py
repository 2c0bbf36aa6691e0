"""Crash-safe checkpoints, a log consistent with them, and output folders of other runs."""

import builtins
import json
import os
import shutil

import numpy as np
import pytest

from brain2pix_gluon.cli import main
from brain2pix_gluon.errors import TrainingError
from brain2pix_gluon.training.checkpoint import find_checkpoint
from brain2pix_gluon.training.trainer import Trainer

from conftest import TINY, tiny_config

CFG = ("train.epochs=3", "train.max_steps_per_epoch=2", "train.grid_samples=0",
       "train.history_capacity=4")


class Crash(BaseException):
    """A simulated kill: no ``except Exception`` handler catches it."""


def _g_params(trainer):
    return {k: v.data().asnumpy().copy() for k, v in trainer.nets["net_g"].collect_params().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _crash_on_call(monkeypatch, number):
    """Make the ``number``-th file-system operation (open, rename, mkdir, remove) raise Crash."""
    count = [0]

    def wrap(module, name):
        real = getattr(module, name)

        def op(*args, **kwargs):
            count[0] += 1
            if count[0] == number:
                raise Crash(f"{name} #{number}")
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, op)

    for module, name in ((builtins, "open"), (os, "replace"), (os, "rename"), (os, "makedirs"),
                         (os, "mkdir"), (os, "remove"), (os, "unlink"), (shutil, "rmtree")):
        wrap(module, name)
    return count


def test_a_crash_between_any_two_steps_of_a_save_leaves_a_complete_checkpoint(
        prepared_dir, tmp_path, monkeypatch):
    train = os.path.join(prepared_dir, "train.h5")
    cfg = tiny_config(*CFG)
    run = str(tmp_path / "run")
    trainer = Trainer(cfg, train, run, show_progress=False)
    assert trainer.fit(stop_after_steps=1) == "interrupted"       # checkpoint A: epoch 0, step 1
    old = _g_params(trainer)
    trainer.fit(epochs=1)                                          # one more step, then save B
    new = _g_params(trainer)
    assert not _same(old, new)
    shutil.rmtree(run)

    outcomes = []
    for number in range(1, 200):
        shutil.rmtree(run, ignore_errors=True)
        trainer = Trainer(cfg, train, run, show_progress=False)
        trainer.fit(stop_after_steps=1)                            # checkpoint A
        with monkeypatch.context() as patch:
            count = _crash_on_call(patch, number)
            try:
                trainer.fit(epochs=1)                              # trains a step, saves B
                crashed = False
            except Crash:
                crashed = True
        resumed = Trainer(cfg, train, run, show_progress=False)
        assert resumed.resume(), f"crash at operation {number}: no checkpoint to resume"
        params = _g_params(resumed)
        where = (resumed.epoch, resumed.step)
        if where == (0, 1):
            assert _same(params, old), f"crash at operation {number}: checkpoint A is not A"
        else:
            assert where == (1, 0) and _same(params, new), f"crash at {number}: {where}"
        log = [json.loads(line) for line in open(os.path.join(run, "log.jsonl"))] \
            if os.path.exists(os.path.join(run, "log.jsonl")) else []
        assert [r["epoch"] for r in log] == list(range(1, resumed.epoch + 1))
        outcomes.append(where)
        if not crashed:
            break
    assert number > 10 and outcomes[-1] == (1, 0) and (0, 1) in outcomes
    assert count[0] < number


def test_resume_takes_the_newest_complete_folder_when_the_pointer_lags(prepared_dir, tmp_path,
                                                                       caplog):
    train = os.path.join(prepared_dir, "train.h5")
    cfg = tiny_config(*CFG)
    run = str(tmp_path / "run")
    trainer = Trainer(cfg, train, run, show_progress=False)
    trainer.fit(epochs=1)
    root = os.path.join(run, "checkpoints")
    assert open(os.path.join(root, "LATEST")).read().strip() == "ckpt-000001"
    # as if a save had renamed its folder but stopped before moving the pointer
    shutil.copytree(os.path.join(root, "ckpt-000001"), os.path.join(root, "ckpt-000002"))
    os.makedirs(os.path.join(root, "ckpt-000003.partial"))      # and a later one died half-way
    caplog.set_level("INFO", logger="brain2pix_gluon")
    resumed = Trainer(cfg, train, run, show_progress=False)
    assert resumed.resume()
    assert "ckpt-000002 (newest complete folder (LATEST names 'ckpt-000001'))" in caplog.text
    os.remove(os.path.join(root, "LATEST"))
    assert find_checkpoint(run) == (os.path.join(root, "ckpt-000002"),
                                    "newest complete folder (LATEST missing)")


def test_the_log_follows_the_checkpoint_and_a_resumed_epoch_averages_all_its_steps(
        prepared_dir, tmp_path):
    train = os.path.join(prepared_dir, "train.h5")
    cfg = tiny_config("train.epochs=2", "train.max_steps_per_epoch=4", "train.grid_samples=0")
    straight = Trainer(cfg, train, str(tmp_path / "a"), show_progress=False)
    straight.fit()
    want = [json.loads(line) for line in open(tmp_path / "a" / "log.jsonl")]

    run = str(tmp_path / "b")
    first = Trainer(cfg, train, run, show_progress=False)
    first.fit(stop_after_steps=6)                                  # epoch 2, step 2
    # a crash after this checkpoint had left a record of an epoch it never finished, and a
    # torn line
    with open(os.path.join(run, "log.jsonl"), "a") as handle:
        handle.write(json.dumps({"epoch": 2, "train": {"g": 0.0}}) + "\n" + '{"epoch": 3, "tr')
    resumed = Trainer(cfg, train, run, show_progress=False)
    assert resumed.resume()
    assert [json.loads(line)["epoch"] for line in open(os.path.join(run, "log.jsonl"))] == [1]
    resumed.fit()
    got = [json.loads(line) for line in open(os.path.join(run, "log.jsonl"))]
    assert [r["epoch"] for r in got] == [1, 2] and [r["steps"] for r in got] == [4, 4]
    for mine, theirs in zip(got, want):
        assert mine["train"].keys() == theirs["train"].keys()
        for key in mine["train"]:       # the average over all 4 steps, as without the stop
            assert mine["train"][key] == pytest.approx(theirs["train"][key], rel=1e-5)

    # a crash between the checkpoint of epoch 2 and its log record: resume writes it again
    lines = open(os.path.join(run, "log.jsonl")).readlines()
    open(os.path.join(run, "log.jsonl"), "w").writelines(lines[:1])
    again = Trainer(cfg, train, run, show_progress=False)
    assert again.resume() and again.epoch == 2
    assert [json.loads(line)["epoch"] for line in open(os.path.join(run, "log.jsonl"))] == [1, 2]


def test_a_folder_of_another_run_is_refused_and_left_untouched(prepared_dir, tmp_path, capsys):
    train = os.path.join(prepared_dir, "train.h5")
    run = str(tmp_path / "run")
    Trainer(tiny_config("train.max_steps_per_epoch=1", "name=first"), train, run,
            show_progress=False).fit()
    shutil.rmtree(os.path.join(run, "checkpoints"))      # only its config and log are left
    before = {n: open(os.path.join(run, n)).read() for n in ("config.yaml", "log.jsonl")}
    other = Trainer(tiny_config("train.max_steps_per_epoch=1", "name=second"), train, run,
                    show_progress=False)
    with pytest.raises(TrainingError, match=r"holds another run .*name: checkpoint 'first' vs "
                                            r"now 'second'.*left untouched"):
        other.fit()
    assert {n: open(os.path.join(run, n)).read() for n in before} == before

    os.remove(os.path.join(run, "config.yaml"))          # a log without a config: not ours
    with pytest.raises(TrainingError, match="holds a log.jsonl but no config.yaml"):
        other.fit()
    assert open(os.path.join(run, "log.jsonl")).read() == before["log.jsonl"]


def test_resume_with_nothing_to_resume_is_an_error(prepared_dir, tmp_path, capsys):
    run = str(tmp_path / "empty")
    code = main(["train", "--data", prepared_dir, "--out", run, "--resume", "--no-progress"] + TINY)
    err = capsys.readouterr().err
    assert code == 2 and f"--resume: {run} holds no checkpoint" in err
    assert not os.path.exists(os.path.join(run, "log.jsonl"))
