"""A checkpoint's .params file that cannot be used says why: truncated, or of another network."""

import os
import shutil

import pytest

from brain2pix_gluon.errors import CheckpointError
from brain2pix_gluon.training.checkpoint import find_checkpoint
from brain2pix_gluon.training.inference import load_generator
from brain2pix_gluon.training.trainer import Trainer

from conftest import tiny_config


@pytest.fixture()
def run(prepared_dir, tmp_path):
    cfg = tiny_config("train.max_steps_per_epoch=1", "train.epochs=1", "train.grid_samples=0")
    trainer = Trainer(cfg, os.path.join(prepared_dir, "train.h5"), str(tmp_path / "run"),
                      show_progress=False)
    trainer.fit()
    return cfg, trainer, find_checkpoint(str(tmp_path / "run"))[0]


def test_a_truncated_params_file_is_called_unreadable_not_a_shape_mismatch(run, prepared_dir):
    cfg, trainer, directory = run
    path = os.path.join(directory, "net_g.params")
    with open(path, "rb") as handle:
        head = handle.read(100)
    with open(path, "wb") as handle:
        handle.write(head)
    ds = trainer.train_set
    with pytest.raises(CheckpointError, match=r"net_g.params is not a readable .params file"):
        load_generator(directory, ds.n_voxels, ds.in_channels, ds.n_trs, ds.size)
    again = Trainer(cfg, os.path.join(prepared_dir, "train.h5"), trainer.run_dir,
                    show_progress=False)
    with pytest.raises(CheckpointError, match=r"net_g.params is not a readable .params file"):
        again.resume()


def test_params_of_another_network_are_called_a_mismatch(run):
    _, trainer, directory = run
    ds = trainer.train_set
    shutil.copyfile(os.path.join(directory, "net_d.params"),
                    os.path.join(directory, "net_g.params"))
    with pytest.raises(CheckpointError, match=r"net_g.params (does not match the network's "
                                              r"shapes|lacks parameters the network needs)"):
        load_generator(directory, ds.n_voxels, ds.in_channels, ds.n_trs, ds.size)
