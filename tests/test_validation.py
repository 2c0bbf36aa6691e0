"""Every setting is checked where a config is built, with the valid range in the message."""

import dataclasses
import os
import re

import pytest

from brain2pix_gluon.config import RULES, Config, apply_overrides, load_config
from brain2pix_gluon.errors import ConfigError
from brain2pix_gluon.training.trainer import Trainer

from conftest import tiny_config


def _keys(cls, prefix=""):
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(f.type) or (isinstance(f.type, type)
                                                and dataclasses.is_dataclass(f.type)):
            yield from _keys(f.type, key + ".")
        else:
            yield key


def test_every_field_of_every_section_has_a_rule():
    assert sorted(set(_keys(Config)) - set(RULES)) == []
    assert sorted(set(RULES) - set(_keys(Config))) == []


@pytest.mark.parametrize("override, message", [
    ("train.epochs=0", r"train.epochs: expected an integer >= 1, got 0"),
    ("train.epochs=-3", r"train.epochs: expected an integer >= 1, got -3"),
    ("train.lr=nan", r"train.lr: expected a finite number x with 0 < x, got nan"),
    ("train.lr=-0.001", r"train.lr: expected a finite number x with 0 < x, got -0.001"),
    ("train.max_steps_per_epoch=-1", r"train.max_steps_per_epoch: expected an integer >= 0"),
    ("train.num_workers=-2", r"train.num_workers: expected an integer >= 0, got -2"),
    ("train.grid_samples=-1", r"train.grid_samples: expected an integer >= 0"),
    ("train.beta1=1", r"train.beta1: expected a finite number x with 0 <= x < 1, got 1.0"),
    ("train.seed=-1", r"train.seed: expected an integer in \[0, 2\*\*32\)"),
    ("loss.feature_resize=-224", r"loss.feature_resize: expected 0 \(keep the image size\) or "
                                 r"an integer >= 8"),
    ("loss.feature_layers=40", r"loss.feature_layers: expected an integer in \[1, 37\]"),
    ("loss.pixel_weight=inf", r"loss.pixel_weight: expected a finite number x with 0 <= x"),
    ("model.ndf=0", r"model.ndf: expected an integer >= 1, got 0"),
    ("model.bn_momentum=1.5", r"model.bn_momentum: expected a finite number x with 0 <= x <= 1"),
    ("model.fc_hidden=512,0", r"model.fc_hidden: expected one or more values, each an integer"),
    ("data.tr=0", r"data.tr: expected a finite number x with 0 < x, got 0.0"),
    ("data.n_trs=0", r"data.n_trs: expected an integer >= 1, got 0"),
    ("data.rois=V1,V1", r"data.rois: expected one or more distinct values"),
    ("data.max_ratio=0.5", r"data.max_ratio: expected a finite number x with 1 < x"),
    ("simulation.nan_fraction=1", r"simulation.nan_fraction: expected a finite number x with "
                                  r"0 <= x < 1"),
    ("simulation.n_voxels=10,10", r"simulation.n_voxels: expected 3 values"),
    ("simulation.volumes_per_clip=5", r"simulation.volumes_per_clip: expected at least "
                                      r"data.shift \+ data.n_trs = 9"),
    ("evaluation.max_frames=1", r"evaluation.max_frames: expected 0 \(every test frame\) or an "
                                r"integer >= 2"),
    ("evaluation.clip_length=8", r"evaluation.clip_length: expected an integer >= 16"),
    ("evaluation.alexnet_size=32", r"evaluation.alexnet_size: expected an integer >= 63"),
    ("name=../elsewhere", r"name: expected a non-empty name without /"),
])
def test_bad_settings_are_refused_with_the_valid_range(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Config(), [override])


SECTIONS = [f for f in dataclasses.fields(Config) if dataclasses.is_dataclass(f.type)]


@pytest.mark.parametrize("section", SECTIONS, ids=[f.name for f in SECTIONS])
def test_every_section_checks_its_rules_when_it_is_built(section):
    """A rule-breaking value of every field of every section raises at construction, naming the
    field (no whole Config needed): the first value found that the rule refuses."""
    cls = section.type
    candidates = (0, -1, -1.5, float("nan"), "", "nonsense", (), True, 10 ** 12)
    for f in dataclasses.fields(cls):
        test, _ = RULES[f"{section.name}.{f.name}"]
        bad = next((v for v in candidates if not test(v)), None)
        if bad is None:
            continue
        with pytest.raises(ConfigError, match=rf"^{section.name}\.{f.name}: expected "):
            cls(**{f.name: bad})


def test_all_loss_weights_zero_is_refused():
    with pytest.raises(ConfigError, match=r"at least one weight > 0"):
        apply_overrides(Config(), ["loss.adversarial_weight=0", "loss.feature_weight=0",
                                   "loss.pixel_weight=0"])


def test_the_shipped_configs_and_profiles_are_valid():
    from brain2pix_gluon.configs import __file__ as configs_init
    from brain2pix_gluon.experiments.profiles import PROFILES, apply_profile

    folder = os.path.dirname(configs_init)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".yaml"):
            config = load_config(os.path.join(folder, name))
            for profile in PROFILES:
                apply_profile(config, profile)


def test_a_batch_larger_than_the_dataset_is_refused_with_both_numbers(prepared_dir, tmp_path):
    train = os.path.join(prepared_dir, "train.h5")
    with pytest.raises(ConfigError) as info:
        Trainer(tiny_config("train.batch_size=5000"), train, str(tmp_path), show_progress=False)
    text = str(info.value)
    n = int(re.search(r"training samples \((\d+) in", text).group(1))
    assert text.startswith("train.batch_size: expected at most the number of training samples")
    assert "got 5000" in text and 0 < n < 5000 and train in text
    assert not os.listdir(tmp_path)
