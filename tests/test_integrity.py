"""Integrity of prepared data end to end: checksums, value checks on read, non-finite losses."""

import json
import os
import shutil

import h5py
import numpy as np
import pytest

from brain2pix_gluon.cli import main
from brain2pix_gluon.errors import DataError, TrainingError
from brain2pix_gluon.training import trainer as trainer_module
from brain2pix_gluon.training.checkpoint import find_checkpoint
from brain2pix_gluon.training.trainer import Trainer

from conftest import TINY, tiny_config


def _copy_prepared(prepared_dir, dest):
    os.makedirs(dest)
    for split in ("train", "test"):
        shutil.copy(os.path.join(prepared_dir, f"{split}.h5"), dest)
    return str(dest)


def test_every_prepared_dataset_carries_a_checksum(prepared_dir):
    with h5py.File(os.path.join(prepared_dir, "train.h5"), "r") as f:
        datasets = []
        f.visititems(lambda name, obj: datasets.append(obj) if hasattr(obj, "shape") else None)
        assert len(datasets) >= 10
        assert [d.name for d in datasets if not d.fletcher32] == []


def test_flipped_bytes_inside_a_chunk_stop_training_with_a_clear_error(prepared_dir, tmp_path,
                                                                       capsys):
    data = _copy_prepared(prepared_dir, tmp_path / "data")
    path = os.path.join(data, "train.h5")
    with h5py.File(path, "r") as f:
        info = f["frames"].id.get_chunk_info(1)      # the second chunk of the target frames
    assert info.size > 256
    with open(path, "r+b") as handle:                # flip 128 bytes in the middle of the chunk
        handle.seek(info.byte_offset + info.size // 2 - 64)
        block = bytearray(handle.read(128))
        handle.seek(info.byte_offset + info.size // 2 - 64)
        handle.write(bytes(b ^ 0xFF for b in block))
    run = str(tmp_path / "run")
    code = main(["train", "--data", data, "--out", run, "--no-progress"] + TINY
                + ["train.max_steps_per_epoch=2"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert path in err and "/frames" in err and "Fletcher32" in err
    assert "Traceback" not in err
    assert find_checkpoint(run)[0] is None             # nothing trained, nothing saved
    assert not os.path.exists(os.path.join(run, "log.jsonl"))


@pytest.mark.parametrize("key, index, value, expected", [
    ("frames", (3, 0, 5, 5), 2.0, r"/frames holds values in \[0, 2\]; expected values in \[0, 1\]"),
    ("rf_images", (7, 1, 2, 2), np.nan, r"/rf_images holds 1 NaN/inf values"),
    ("voxels/V2", (4, 3), np.inf, r"/voxels/V2 holds 1 NaN/inf values"),
])
def test_values_out_of_range_are_refused_on_read(prepared_dir, tmp_path, key, index, value,
                                                 expected):
    data = _copy_prepared(prepared_dir, tmp_path / "data")
    path = os.path.join(data, "train.h5")
    with h5py.File(path, "r+") as f:     # rewritten through HDF5: the checksums stay valid
        f[key][index] = value
    trainer = Trainer(tiny_config("train.max_steps_per_epoch=1"), path, str(tmp_path / "run"),
                      show_progress=False)
    with pytest.raises(DataError, match=expected) as info:
        trainer.fit()
    assert path in str(info.value)


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(
        prepared_dir, tmp_path, monkeypatch):
    cfg = tiny_config("train.epochs=2", "train.max_steps_per_epoch=2", "train.grid_samples=0")
    train = os.path.join(prepared_dir, "train.h5")
    run = str(tmp_path / "run")
    trainer = Trainer(cfg, train, run, show_progress=False)
    assert trainer.fit(epochs=1) == "complete"
    good, _ = find_checkpoint(run)
    before = {k: v.data().asnumpy().copy() for k, v in trainer.nets["net_g"].collect_params().items()}

    real = trainer_module.update_generator

    def exploding(*args, **kwargs):
        out = real(*args, **kwargs)
        return {**out, "total": float("nan")}

    monkeypatch.setattr(trainer_module, "update_generator", exploding)
    with pytest.raises(TrainingError, match=r"non-finite loss at epoch 2, steps 1-2: .*nan.*"
                                            r"last good checkpoint .*ckpt-000001"):
        trainer.fit()
    assert find_checkpoint(run)[0] == good
    log = [json.loads(line) for line in open(os.path.join(run, "log.jsonl"))]
    assert [r["epoch"] for r in log] == [1]
    monkeypatch.setattr(trainer_module, "update_generator", real)
    resumed = Trainer(cfg, train, run, show_progress=False)
    assert resumed.resume() and (resumed.epoch, resumed.step) == (1, 0)
    after = {k: v.data().asnumpy() for k, v in resumed.nets["net_g"].collect_params().items()}
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
