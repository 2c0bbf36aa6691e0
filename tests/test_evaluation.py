import json
import os

import numpy as np
import pytest
from scipy import stats

from brain2pix_gluon.config import EvalConfig
from brain2pix_gluon.errors import DataError
from brain2pix_gluon.evaluation import (binomial_vs_baseline, euclidean_rows, flow_epe,
                                        pearson_rows, pixcorr, psnr, ssim_gray, summarize,
                                        ttest_vs_chance, two_way_identification)
from brain2pix_gluon.evaluation.evaluate import chance_partners, evaluate
from brain2pix_gluon.evaluation.features import clip_indices
from brain2pix_gluon.evaluation.tables import build_tables, render_latex, render_markdown, write_tables
from brain2pix_gluon.io.reconstructions import read_reconstructions, write_reconstructions


@pytest.fixture(autouse=True)
def _feature_cache(tmp_path_factory, monkeypatch):
    # evaluate caches ground-truth features; keep them out of the user's cache folder
    monkeypatch.setenv("BRAIN2PIX_CACHE", str(tmp_path_factory.getbasetemp() / "feature_cache"))


def test_pearson_and_euclidean_by_hand():
    a = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])
    b = np.array([[2.0, 4.0, 6.5], [1.0, 0.0, 1.0]])
    # row 0 by hand: x = (-1, 0, 1), y = (-2.1667, -0.1667, 2.3333)
    y = b[0] - b[0].mean()
    r0 = (-1 * y[0] + 1 * y[2]) / np.sqrt(2 * (y ** 2).sum())
    np.testing.assert_allclose(pearson_rows(a, b), [r0, -1.0])
    np.testing.assert_allclose(euclidean_rows(a, b), [np.sqrt(1 + 4 + 12.25), np.sqrt(3)])
    with pytest.raises(DataError, match="same shape"):
        pearson_rows(a, b[:, :2])


def test_image_metrics_by_hand(rng):
    target = rng.random((3, 3, 16, 16))
    assert np.allclose(pixcorr(target, target), 1)
    assert np.allclose(ssim_gray(target, target), 1)
    assert np.all(np.isinf(psnr(target, target)))
    noisy = np.clip(target + 0.1, 0, 1)
    mse = ((noisy - target) ** 2).reshape(3, -1).mean(1)
    np.testing.assert_allclose(psnr(noisy, target), 10 * np.log10(1 / mse))
    flat = np.full_like(target, 0.5)
    assert np.all(ssim_gray(flat, target) < 0.2)
    # SSIM follows skimage's Gaussian-weighted definition on luminance
    from skimage.metrics import structural_similarity

    gray = lambda x: 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]  # noqa: E731
    expected = structural_similarity(gray(target)[1], gray(noisy)[1], gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False, data_range=1.0)
    assert ssim_gray(noisy, target)[1] == pytest.approx(expected)


def test_two_way_identification(rng):
    feats = rng.normal(size=(40, 50))
    assert np.all(two_way_identification(feats, feats) == 1.0)
    shuffled = two_way_identification(rng.normal(size=(40, 50)), feats)
    assert 0.35 < shuffled.mean() < 0.65
    # by hand: 3 frames; rec 0 matches gt 0 better than gt 1 but worse than gt 2
    gt = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0.5, 0.01]], float)
    rec = np.array([[1, 0, 0.5, 0], [0, 1, 0, 0], [1, 0.1, 0, 0]], float)
    r = pearson_rows(np.repeat(rec[:1], 3, 0), gt)
    assert r[1] < r[0] < r[2]
    assert two_way_identification(rec, gt)[0] == 0.5


def test_flow_epe_zero_for_identical_and_positive_for_wrong_motion(rng):
    base = rng.random((1, 3, 40, 40))
    from scipy import ndimage

    base = ndimage.gaussian_filter(base, (0, 0, 2, 2))
    moving = np.concatenate([np.roll(base, k, axis=3) for k in range(4)])
    still = np.repeat(base, 4, axis=0)
    runs, frames = np.zeros(4, int), np.arange(4)
    assert np.allclose(flow_epe(moving, moving, runs, frames), 0)
    assert flow_epe(still, moving, runs, frames).mean() > 0.3
    # pairs never straddle two runs
    assert len(flow_epe(moving, moving, np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))) == 2


def test_statistics_against_scipy(rng):
    values = rng.normal(0.3, 0.1, 50)
    chance = rng.normal(0.25, 0.1, 50)
    res = ttest_vs_chance(values, chance, higher_is_better=True)
    ref = stats.ttest_rel(values, chance, alternative="greater")
    assert res["t"] == pytest.approx(ref.statistic) and res["p"] == pytest.approx(ref.pvalue)
    res = ttest_vs_chance(values, chance, higher_is_better=False)
    assert res["p"] == pytest.approx(stats.ttest_rel(values, chance, alternative="less").pvalue)
    b = binomial_vs_baseline(70, 100)
    assert b["p"] == pytest.approx(stats.binomtest(70, 100, 0.5, alternative="greater").pvalue)
    s = summarize([1.0, 2.0, 3.0, np.nan])
    assert s["mean"] == 2 and s["n"] == 3 and s["sem"] == pytest.approx(1 / np.sqrt(3))
    assert s["ci95"][1] - 2 == pytest.approx(stats.t.ppf(0.975, 2) / np.sqrt(3))


def test_chance_partners_never_match():
    for n in (2, 7, 10, 11):
        p = chance_partners(n)
        assert np.all(p != np.arange(n)) and p.min() >= 0 and p.max() < n
    assert chance_partners(10)[chance_partners(10)].tolist() == list(range(10))
    with pytest.raises(DataError):
        chance_partners(1)


def test_clip_indices_are_centred_and_clamped_per_run():
    clips = clip_indices(np.array([0] * 20 + [1] * 5), 16)
    assert clips[10].tolist() == list(range(2, 18))
    assert clips[0].tolist() == [0] * 9 + list(range(1, 8))      # t-8..t+7, clamped at 0
    assert clips[19, -1] == 19                  # clamped at the end of run 0
    assert clips[22].min() == 20 and clips[22].max() == 24


@pytest.fixture(scope="module")
def recon_files(tmp_path_factory):
    rng = np.random.default_rng(0)
    from scipy import ndimage

    targets = ndimage.gaussian_filter(rng.random((6, 3, 32, 32)), (0, 0, 3, 3)).astype(np.float32)
    targets = (targets - targets.min()) / (targets.max() - targets.min())
    samples = np.stack([np.zeros(6, int), np.arange(6), np.arange(6) + 4, np.arange(6),
                        np.arange(6) + 4], axis=1)
    root = tmp_path_factory.mktemp("recons")
    perfect = write_reconstructions(str(root / "perfect.h5"), targets, targets, samples, ["clip_01"],
                                    {"model": "perfect", "weights": {"feature_loss": "pretrained"}})
    noise = np.clip(targets + rng.normal(0, 0.3, targets.shape), 0, 1)
    noisy = write_reconstructions(str(root / "noisy.h5"), noise, targets, samples, ["clip_01"],
                                  {"model": "noisy"})
    return perfect, noisy, root


def test_reconstruction_schema_round_trip_and_errors(recon_files, tmp_path):
    perfect, _, _ = recon_files
    data = read_reconstructions(perfect)
    assert data["reconstructions"].shape == (6, 3, 32, 32) and data["run_names"] == ["clip_01"]
    assert data["attrs"]["weights"] == {"feature_loss": "pretrained"}
    with pytest.raises(DataError, match="do not exist"):
        read_reconstructions(str(tmp_path / "none.h5"))
    with pytest.raises(DataError, match=r"expected two arrays of shape \(n, 3, S, S\)"):
        write_reconstructions(str(tmp_path / "x.h5"), np.zeros((2, 3, 8, 8)), np.zeros((2, 1, 8, 8)),
                              np.zeros((2, 5)), ["a"], {})
    assert not os.path.exists(tmp_path / "x.h5")


def test_evaluate_identical_shuffled_and_baseline(recon_files):
    perfect, noisy, root = recon_files
    cfg = EvalConfig(feature_weights="random", batch_size=4)
    res = evaluate(perfect, str(root / "res_perfect"), cfg, baselines={"noisy": noisy},
                   experiment="baseline", label="B2P-FixedRF", show_progress=False)
    for key, m in res["metrics"].items():
        if key.endswith("_r"):
            assert m["mean"] == pytest.approx(1.0, abs=1e-5), key
        else:
            assert m["mean"] == pytest.approx(0.0, abs=1e-3), key
    assert res["field_metrics"]["twoway_alexnet2"]["mean"] == 1.0
    assert res["field_metrics"]["pixcorr"]["mean"] == pytest.approx(1.0)
    assert res["field_metrics"]["flow_epe"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert "RANDOM EVALUATION WEIGHTS" in res["marks"]
    assert "NOT pretrained" in res["weights"]["evaluation"]["alexnet"]
    b = res["baselines"]["noisy"]
    assert b["n"] == 6 * 12 and b["successes"] == b["n"] and b["p"] < 1e-10
    rows = open(root / "res_perfect" / "per_frame.csv").read().splitlines()
    assert len(rows) == 7 and rows[0].startswith("index,run,frame,alexnet_pool2_r")
    saved = json.load(open(root / "res_perfect" / "results.json"))
    assert saved["n_frames"] == 6 and saved["experiment"] == "baseline"
    res_noisy = evaluate(noisy, str(root / "res_noisy"), cfg, experiment="baseline",
                         label="Baseline 1", show_progress=False)
    assert res_noisy["metrics"]["alexnet_pool2_r"]["mean"] < 0.999


def test_tables_render_the_papers_layout(recon_files):
    _, _, root = recon_files
    written = write_tables(str(root), str(root / "tables"))
    assert any(p.endswith("table1.md") for p in written) and any(p.endswith("table2.tex") for p in written)
    md = open(root / "tables" / "table1.md").read()
    lines = md.splitlines()
    assert "Table 1. Baseline experiment: correlation" in lines[0]
    assert "RANDOM EVALUATION WEIGHTS" in lines[0]
    assert lines[2] == ("| Model | AlexNet pool2 | AlexNet pool5 | AlexNet fc6 | C3D pool2 | "
                        "C3D pool5 | C3D fc6 |")
    assert lines[4].startswith("| B2P-FixedRF | 1.000 +- 0.000")
    assert lines[5].startswith("| Baseline 1 |")
    assert "B2P-FixedRF vs noisy: 72/72 wins" in md
    tex = open(root / "tables" / "table2.tex").read()
    assert r"\begin{tabular}{lcccccc}" in tex and "0.000 $\\pm$" in tex


def test_table_ordering_and_significance_marks():
    def result(label, p):
        metric = {"mean": 0.5, "sem": 0.01, "p": p}
        return {"label": label, "experiment": "ablation", "n_frames": 10, "marks": [],
                "metrics": {f"{layer}_{k}": metric for layer in
                            ("alexnet_pool2", "alexnet_pool5", "alexnet_fc6", "c3d_pool2",
                             "c3d_pool5", "c3d_fc6") for k in ("r", "dist")}}

    tables = build_tables({"ablation": [result("No feature", 0.2), result("Full", 0.01)]})
    assert [t["number"] for t in tables] == [5, 6]
    assert [row[0] for row in tables[0]["rows"]] == ["Full", "No feature"]
    md = render_markdown(tables[0])
    assert "| Full | 0.500 +- 0.010* |" in md and "| No feature | 0.500 +- 0.010 |" in md
    assert "$^*$" in render_latex(tables[0])
