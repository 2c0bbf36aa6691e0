import pytest

from brain2pix_gluon.config import Config, apply_overrides, config_to_dict, load_config, with_changes
from brain2pix_gluon.errors import ConfigError


def test_defaults_are_the_papers_values():
    c = Config()
    assert (c.data.shift, c.data.n_trs, c.data.image_size, c.data.tr) == (4, 5, 96, 0.7)
    assert c.data.rois == ("V1", "V2", "V3") and c.data.rf_layout == "aligned"
    assert (c.loss.adversarial_weight, c.loss.feature_weight, c.loss.pixel_weight) == (1, 100, 1)
    assert c.loss.feature_distance == "l1" and c.loss.feature_layers == 22
    assert c.loss.feature_resize == 224 and c.loss.imagenet_normalize is False
    assert c.loss.feature_weights == "auto" and c.evaluation.feature_weights == "auto"
    assert (c.train.batch_size, c.train.lr, c.train.beta1) == (8, 2e-4, 0.5)
    assert (c.train.history_capacity, c.train.history_swap_prob) == (50, 0.5)
    assert c.model.bn_momentum == 0.1 and c.model.init_sigma == 0.02


def test_yaml_files_hold_only_differences(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: lrf\nmodel:\n  variant: learned_rf\ntrain:\n  batch_size: 12\n")
    c = load_config(path, ["train.epochs=3", "data.rois=V1,V3"])
    assert c.name == "lrf" and c.model.variant == "learned_rf"
    assert c.train.batch_size == 12 and c.train.epochs == 3 and c.data.rois == ("V1", "V3")
    assert c.loss == Config().loss
    assert config_to_dict(c)["data"]["rois"] == ["V1", "V3"]


# What each experiment file must change from the paper's defaults (paper section 2.5 and
# Table/figure captions): everything else stays at the defaults.
DATA_SIZE = {f"data_size_{p}": {("train", "train_fraction"): p / 100, ("train", "batch_size"): 4,
                                ("train", "epochs"): 50} for p in (20, 40, 60, 80, 100)}
EXPECTED_DIFFERENCES = {
    "fixed_rf": {},
    "synthetic": {("model", "input"): "synthetic"},
    "learned_rf": {("model", "variant"): "learned_rf", ("train", "batch_size"): 12},
    "baseline2_shen": {("model", "variant"): "shen"},
    "baseline3_fc": {("model", "variant"): "fully_connected"},
    "roi_V1": {("data", "rois"): ["V1"]},
    "roi_V2": {("data", "rois"): ["V2"]},
    "roi_V3": {("data", "rois"): ["V3"]},
    "ablation_no_adversarial": {("loss", "adversarial_weight"): 0},
    "ablation_no_feature": {("loss", "feature_weight"): 0},
    **DATA_SIZE,
}


def _expected(name):
    """The defaults as a dict, with the experiment's values written in."""
    expected = config_to_dict(Config())
    expected["name"] = name
    for (section, key), value in EXPECTED_DIFFERENCES[name].items():
        expected[section][key] = value
    return expected


def test_repository_configs_differ_from_the_defaults_exactly_as_the_paper():
    import glob
    import os

    root = os.path.join(os.path.dirname(__file__), "..", "brain2pix_gluon", "configs")
    files = {os.path.basename(p)[:-len(".yaml")]: p for p in glob.glob(os.path.join(root, "*.yaml"))}
    assert set(files) == set(EXPECTED_DIFFERENCES)
    for name, path in files.items():
        config = load_config(path)
        assert config_to_dict(config) == _expected(name), name


@pytest.mark.parametrize("override, message", [
    ("train.batchsize=4", r"unknown key 'batchsize'; valid keys are \[.*'batch_size'"),
    ("trian.epochs=4", r"unknown section 'trian'"),
    ("train.epochs=four", r"train.epochs: expected int, got 'four'"),
    ("train.epochs=2.5", r"train.epochs: expected an integer"),
    ("model.variant=vae", r"model.variant: expected one of .*'fixed_rf'.*got 'vae'"),
    ("data.image_size=100", r"multiple of 32"),
    ("model.ngf=8", r"model.ngf: expected a multiple of 8 that is at least 16, got 8"),
    ("train.hybridize=maybe", r"expected true or false"),
    ("noequals", r"section.key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Config(), [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_with_changes_validates():
    c = with_changes(Config(), train={"epochs": 2})
    assert c.train.epochs == 2
    with pytest.raises(ConfigError):
        with_changes(Config(), train={"train_fraction": 0.0})
