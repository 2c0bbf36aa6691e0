"""One registry of experiments: labels, configs, tables, figures and result paths."""

import os

import pytest

from brain2pix_gluon.configs import config_path
from brain2pix_gluon.errors import Brain2PixError
from brain2pix_gluon.experiments.tables import build_tables, render_markdown
from brain2pix_gluon.experiments import (EXPERIMENTS, FIGURES, MissingResultsError, figure_inputs,
                                         get_experiment, result_path, table_rows)


def test_the_seven_experiments_in_the_papers_numbering():
    assert [(e.number, e.name) for e in EXPERIMENTS.values()] == [
        (1, "synthetic"), (2, "fixed_rf"), (3, "learned_rf"), (4, "baselines"), (5, "roi"),
        (6, "ablation"), (7, "data_size")]
    # every trained variant names a shipped config
    for e in EXPERIMENTS.values():
        for v in e.variants:
            if v.kind == "train":
                assert os.path.exists(config_path(v.config)), (e.name, v.config)
    # Tables 1-2 gather experiments 2, 3 and 4 in the paper's row order
    assert table_rows("baseline") == ["B2P-FixedRF", "B2P-LearnedRF", "Baseline 1", "Baseline 2",
                                      "Baseline 3", "Ridge floor (not in the paper)"]
    assert table_rows("data_size") == ["20%", "40%", "60%", "80%", "100%"]
    with pytest.raises(Brain2PixError, match=r"'fixedrf' unknown; expected one of .*'fixed_rf'"):
        get_experiment("fixedrf")


def test_result_paths_and_loud_figures(tmp_path):
    path = result_path(tmp_path, "ablation", "No feature", "results")
    assert path == os.path.join(str(tmp_path), "ablation", "no_feature", "eval", "results.json")
    assert result_path(tmp_path, "roi", "v1_3") == os.path.join(
        str(tmp_path), "roi", "v1_3", "recon", "reconstructions.h5")
    with pytest.raises(Brain2PixError, match="no variant 'V4'"):
        result_path(tmp_path, "roi", "V4")
    # a figure whose panel is missing names the file and the command that makes it
    for experiment, label in FIGURES["fig5"][:3]:
        made = result_path(tmp_path, experiment, label)
        os.makedirs(os.path.dirname(made))
        open(made, "w").close()
    with pytest.raises(MissingResultsError, match=r"V3: .*roi.v3.recon.reconstructions.h5.*"
                                                  r"brain2pix experiment roi"):
        figure_inputs(tmp_path, "fig5")
    found = figure_inputs(tmp_path, "fig5", allow_missing=("V3",))
    assert list(found) == ["V1-3", "V1", "V2"]


def _result(label, pixcorr_disc=None):
    metric = {"mean": 0.5, "sem": 0.01, "p": 0.5}
    layers = ("alexnet_pool2", "alexnet_pool5", "alexnet_fc6", "c3d_pool2", "c3d_pool5", "c3d_fc6")
    out = {"label": label, "experiment": "roi", "n_frames": 10, "marks": [],
           "metrics": {f"{layer}_{k}": metric for layer in layers for k in ("r", "dist")}}
    if pixcorr_disc is not None:
        out["field_metrics"] = {"pixcorr_disc": {"mean": pixcorr_disc, "sem": 0.02},
                                "pixcorr": {"mean": 0.9, "sem": 0.01}}
    return out


def test_each_group_has_a_pixel_metric_table_that_names_its_variants():
    tables = build_tables({"roi": [_result("V2", 0.25), _result("V1-3", 0.4)]})
    assert [t["number"] for t in tables] == [3, 4, "S3"]
    field = tables[2]
    assert "valid field" in field["caption"] and "whole frame" in field["caption"]
    md = render_markdown(field)
    assert "| Model | PixCorr (valid field) | SSIM (valid field) | PixCorr (whole frame) |" in md
    assert "| V1-3 | 0.400 +- 0.020 | n/a | 0.900 +- 0.010 |" in md       # registry row order
    assert md.index("| V1-3 |") < md.index("| V2 |")
    # results without pixel metrics (older files) give the paper's two tables only
    assert [t["number"] for t in build_tables({"roi": [_result("V1")]})] == [3, 4]
