"""Shared fixtures: a tiny simulated dataset (32x32 frames), simulated and prepared once per session."""

import logging

import numpy as np
import pytest


from brain2pix_gluon.config import Config, apply_overrides

TINY = [
    "data.image_size=32",
    "simulation.n_train_runs=2",
    "simulation.volumes_per_run=60",
    "simulation.n_test_clips=1",
    "simulation.volumes_per_clip=45",
    "simulation.video_size=64,36",
    "simulation.n_repetitions=3",
    "simulation.n_voxels=150,120,90",
    "simulation.n_nonvisual_voxels=20",
    "model.ngf=16",  # the smallest width config accepts (see config.RULES)
    "model.ndf=8",
    "loss.feature_weights=random",
    "evaluation.feature_weights=random",
    "loss.feature_resize=32",
    "train.batch_size=4",
    "train.epochs=1",
    "train.hybridize=true",
]


def tiny_config(*extra):
    """The tiny test configuration, with extra ``section.key=value`` overrides."""
    return apply_overrides(Config(), TINY + list(extra))


@pytest.fixture(scope="session")
def config():
    return tiny_config()


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory, config):
    from brain2pix_gluon.data.simulation import simulate_dataset

    out = str(tmp_path_factory.mktemp("raw"))
    simulate_dataset(out, config.simulation, config.data, show_progress=False)
    return out


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory, raw_dir, config):
    from brain2pix_gluon.preprocessing.prepare import prepare_dataset

    out = str(tmp_path_factory.mktemp("prepared"))
    prepare_dataset(raw_dir, out, config, show_progress=False)
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    caplog.set_level(logging.WARNING, logger="brain2pix_gluon")


def layered(*groups):
    """``section.key=value`` lists merged into one, a later group's value winning.

    The command line refuses a key given twice with different values, so tests that start from
    TINY and change some of its settings pass the merged list.
    """
    merged = {}
    for group in groups:
        for item in group:
            merged[item.split("=", 1)[0]] = item
    return list(merged.values())
