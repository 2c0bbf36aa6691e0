"""``evaluate --baseline NAME=PATH``, baselines matched by their ground truth, robust tables."""

import hashlib
import json
import os

import numpy as np
import pytest

from brain2pix_gluon.cli import main
from brain2pix_gluon.errors import DataError
from brain2pix_gluon.evaluation import evaluate as evaluate_module
from brain2pix_gluon.evaluation.features import LAYERS
from brain2pix_gluon.io.reconstructions import read_reconstructions, write_reconstructions


def _recon_file(path, targets, seed):
    rng = np.random.default_rng(seed)
    n = len(targets)
    samples = np.stack([np.zeros(n, int), np.arange(n), np.arange(n), np.arange(n),
                        np.arange(n)], axis=1)
    write_reconstructions(str(path), rng.random(targets.shape), targets, samples, ["clip"],
                          {"model": os.path.basename(str(path))})
    return str(path)


@pytest.fixture
def targets():
    return np.random.default_rng(0).random((6, 3, 8, 8)).astype(np.float32)


def test_the_target_checksum_is_stored_and_is_the_sha256_of_the_frames(tmp_path, targets):
    path = _recon_file(tmp_path / "r.h5", targets, 1)
    frames = np.ascontiguousarray(targets, "<f4")       # dtype string, shape, then the bytes
    digest = hashlib.sha256(f"<f4{frames.shape}".encode())
    digest.update(frames.tobytes())
    assert read_reconstructions(path)["attrs"]["targets_sha256"] == digest.hexdigest()


def test_baseline_option_parses_with_a_space(tmp_path, targets, monkeypatch, capsys):
    ours = _recon_file(tmp_path / "ours.h5", targets, 1)
    other = _recon_file(tmp_path / "other.h5", targets, 2)
    seen = {}

    def fake_evaluate(recon, out, cfg, baselines, *args):
        seen.update(baselines)
        return {"label": "x", "n_frames": 6, "marks": [], "metrics": {}, "field_metrics": {}}

    monkeypatch.setattr(evaluate_module, "evaluate", fake_evaluate)
    code = main(["evaluate", ours, "--out", str(tmp_path / "res"), "--baseline",
                 f"other={other}", "--no-progress", "evaluation.max_frames=4"])
    assert code == 0, capsys.readouterr().err
    assert seen == {"other": other}


def test_a_baseline_of_another_test_set_is_refused(tmp_path, targets, capsys):
    ours = _recon_file(tmp_path / "ours.h5", targets, 1)
    shifted = targets.copy()
    shifted[3] = 1 - shifted[3]             # same sample indices, other ground truth
    other = _recon_file(tmp_path / "other.h5", shifted, 2)
    code = main(["evaluate", ours, "--out", str(tmp_path / "res"), "--baseline",
                 f"other={other}", "--no-progress", "evaluation.feature_weights=random"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"baseline other ({other}): its ground-truth frames differ from those of {ours}" in err
    assert not os.path.exists(tmp_path / "res")
    with pytest.raises(DataError, match="ground-truth frames differ"):
        evaluate_module.evaluate(ours, str(tmp_path / "res2"), baselines={"b": other},
                                 extractor=object())


def _results(label, experiment="ablation"):
    metric = {"mean": 0.5, "sem": 0.01, "p": 0.01}
    return {"label": label, "experiment": experiment, "n_frames": 10, "marks": [],
            "metrics": {f"{layer}_{k}": metric for layer in LAYERS for k in ("r", "dist")}}


def test_tables_render_what_they_can_and_list_what_they_skipped(tmp_path, capsys):
    root = tmp_path / "results"
    for name, content in (("full", json.dumps(_results("Full"))), ("broken", "{not json"),
                          ("partial", json.dumps({**_results("No feature"), "metrics": {}})),
                          ("nofeat", json.dumps(_results("No adversarial")))):
        os.makedirs(root / name)
        (root / name / "results.json").write_text(content)
    assert main(["tables", str(root)]) == 0
    out = capsys.readouterr().out
    assert "| Full | 0.500 +- 0.010* |" in out and "| No adversarial |" in out
    assert "**Skipped results**" in out
    assert f"- {root / 'broken' / 'results.json'}: cannot be read as JSON" in out
    assert (f"- {root / 'partial' / 'results.json'}: metrics.alexnet_pool2_r: expected mean, "
            f"sem and p numbers, got None") in out
    written = sorted(os.listdir(root / "tables"))
    assert written == ["table5.csv", "table5.md", "table5.tex", "table6.csv", "table6.md",
                       "table6.tex", "tables.md"]

    for name in ("full", "nofeat"):
        os.remove(root / name / "results.json")
    assert main(["tables", str(root)]) == 2
    err = capsys.readouterr().err
    assert "no usable results.json" in err and "broken" in err and "partial" in err
