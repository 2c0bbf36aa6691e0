"""The time-shuffled fMRI control: same inputs, same targets, broken pairing."""

import os

import numpy as np
import pytest

from brain2pix_gluon.data import RFSImageDataset
from brain2pix_gluon.data.controls import (TimeShuffledDataset, apply_input_control,
                                           shuffled_pairing)
from brain2pix_gluon.errors import ConfigError, DataError


def test_pairing_is_a_far_permutation_without_fixed_points():
    runs = np.repeat([0, 1, 2], [50, 40, 30])
    partner = shuffled_pairing(runs, seed=3, min_separation=16)
    assert sorted(partner.tolist()) == list(range(120))            # a permutation
    idx = np.arange(120)
    assert np.all(partner != idx)
    same_run = runs[partner] == runs
    assert np.all(np.abs(partner - idx)[same_run] >= 16)
    assert len(np.unique((partner - idx) % 120)) > 10              # not one cyclic shift
    np.testing.assert_array_equal(partner, shuffled_pairing(runs, seed=3, min_separation=16))
    assert not np.array_equal(partner, shuffled_pairing(runs, seed=4, min_separation=16))
    one_run = shuffled_pairing(np.zeros(40, int), seed=0, min_separation=16)
    assert np.all(np.abs(one_run - np.arange(40)) >= 16)
    with pytest.raises(DataError, match="expected at least 32"):
        shuffled_pairing(np.zeros(20, int), min_separation=16)


@pytest.fixture(scope="module")
def train_set(prepared_dir):
    return RFSImageDataset(os.path.join(prepared_dir, "train.h5"))


def test_time_shuffled_dataset_keeps_inputs_and_targets_and_moves_whole_stacks(train_set):
    control = apply_input_control(train_set, "time_shuffled", seed=0, min_separation=8)
    assert isinstance(control, TimeShuffledDataset) and len(control) == len(train_set)
    assert control.in_channels == train_set.in_channels and control.rois == train_set.rois
    n = len(train_set)
    inputs = np.stack([train_set[i][0] for i in range(n)])
    targets = np.stack([train_set[i][1] for i in range(n)])
    shuffled = [control[i] for i in range(n)]
    s_inputs = np.stack([x for x, _ in shuffled])
    s_targets = np.stack([t for _, t in shuffled])
    np.testing.assert_array_equal(s_targets, targets)               # targets in their order
    np.testing.assert_array_equal(s_inputs, inputs[control.partner])  # whole 15-channel stacks
    # every input is used exactly once: all marginal statistics are those of the original set
    order = lambda x: x[np.lexsort(x.reshape(n, -1).T[::-1])]  # noqa: E731
    np.testing.assert_array_equal(order(s_inputs), order(inputs))
    assert s_inputs.mean() == pytest.approx(inputs.mean(), rel=1e-6)
    np.testing.assert_allclose(s_inputs.std(axis=0), inputs.std(axis=0), rtol=1e-5, atol=1e-7)
    assert not np.array_equal(s_inputs, inputs)
    again = apply_input_control(train_set, "time_shuffled", seed=0, min_separation=8)
    np.testing.assert_array_equal(again.partner, control.partner)


def test_input_control_choices(train_set):
    assert apply_input_control(train_set, "none") is train_set
    with pytest.raises(ConfigError, match="train.input_control: expected one of"):
        apply_input_control(train_set, "shuffled")


def test_config_field():
    from brain2pix_gluon.config import Config, apply_overrides

    assert Config().train.input_control == "none"
    cfg = apply_overrides(Config(), ["train.input_control=time_shuffled"])
    assert cfg.train.input_control == "time_shuffled"
