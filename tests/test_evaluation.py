import json
import os

import numpy as np
import pytest

from brain2pix_gluon.config import EvalConfig
from brain2pix_gluon.errors import DataError
from brain2pix_gluon.evaluation import (binomial_vs_baseline, euclidean_rows, flow_epe,
                                        pearson_rows, pixcorr, psnr, ssim_gray, summarize,
                                        ttest_vs_chance, two_way_identification)
from brain2pix_gluon.evaluation.evaluate import chance_partners, evaluate
from brain2pix_gluon.evaluation.features import LAYERS, clip_indices
from brain2pix_gluon.experiments.tables import build_tables, render_latex, render_markdown, write_tables
from brain2pix_gluon.io.reconstructions import read_reconstructions, write_reconstructions
from brain2pix_gluon.provenance import random_mark


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
    # SSIM by hand (below) on luminance
    luminance = 0.299 * noisy[:, 0] + 0.587 * noisy[:, 1] + 0.114 * noisy[:, 2]
    luminance_t = 0.299 * target[:, 0] + 0.587 * target[:, 1] + 0.114 * target[:, 2]
    for k in range(3):
        assert ssim_gray(noisy, target)[k] == pytest.approx(_ssim_by_hand(luminance[k], luminance_t[k]),
                                                            rel=1e-6)
    # low contrast, where the stabilising constants weigh as much as the (co)variances
    a, b = 0.5 + 0.05 * rng.random((2, 1, 3, 16, 16))
    expected = _ssim_by_hand(*(0.299 * x[0, 0] + 0.587 * x[0, 1] + 0.114 * x[0, 2] for x in (a, b)))
    assert ssim_gray(a, b)[0] == pytest.approx(expected, rel=1e-6)


def _ssim_by_hand(a, b, sigma=1.5, data_range=1.0):
    """Gaussian-weighted SSIM (Wang et al. 2004) written out: local means, variances and covariance
    are weighted sums over an 11x11 window (Gaussian, sigma 1.5, truncated at radius 5, normalised;
    population moments); the SSIM map is averaged over the pixels whose window lies inside the
    image, so no border rule is involved."""
    radius = 5
    offsets = np.arange(-radius, radius + 1)
    g = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for i in range(radius, a.shape[0] - radius):
        for j in range(radius, a.shape[1] - radius):
            pa = a[i - radius:i + radius + 1, j - radius:j + radius + 1]
            pb = b[i - radius:i + radius + 1, j - radius:j + radius + 1]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * pa * pa).sum() - ma ** 2, (w * pb * pb).sum() - mb ** 2
            cov = (w * pa * pb).sum() - ma * mb
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


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


def test_statistics_by_formula(rng):
    # paired t-test, n = 3 (2 degrees of freedom, whose t CDF is 1/2 + t / (2 sqrt(2 + t^2))):
    # differences (2, 3, 6): mean 11/3, sample sd sqrt(13/3), t = (11/3) / (sqrt(13/3) / sqrt(3))
    values, chance = np.array([3.0, 5.0, 10.0]), np.array([1.0, 2.0, 4.0])
    t = 11 / np.sqrt(13)
    cdf = 0.5 + t / (2 * np.sqrt(2 + t * t))
    res = ttest_vs_chance(values, chance, higher_is_better=True)
    assert res["t"] == pytest.approx(t) and res["p"] == pytest.approx(1 - cdf)
    assert res["chance_mean"] == pytest.approx(7 / 3)
    assert ttest_vs_chance(values, chance, higher_is_better=False)["p"] == pytest.approx(cdf)
    # NaN frames are left out of both sides
    res = ttest_vs_chance(np.r_[values, np.nan, 1.0], np.r_[chance, 0.0, np.nan])
    assert res["t"] == pytest.approx(t)
    # larger n: the statistic from its definition
    v, c = rng.normal(0.3, 0.1, 50), rng.normal(0.25, 0.1, 50)
    d = v - c
    assert ttest_vs_chance(v, c)["t"] == pytest.approx(d.mean() / (d.std(ddof=1) / np.sqrt(50)))
    # binomial upper tails, summed exactly: P(X >= k), X ~ B(n, 1/2)
    from math import comb

    assert binomial_vs_baseline(9, 10)["p"] == pytest.approx(11 / 1024)
    tail = sum(comb(100, k) for k in range(70, 101)) / 2 ** 100
    b = binomial_vs_baseline(70, 100)
    assert b["p"] == pytest.approx(tail) and b["rate"] == 0.7
    assert binomial_vs_baseline(0, 4)["p"] == pytest.approx(1.0)
    # summary: 95 % CI half-width t_{0.975, 2} * sem, with t_{0.975, 2} = sqrt(2 q / (1 - q)),
    # q = 0.95^2 (inverting the 2-dof CDF above)
    s = summarize([1.0, 2.0, 3.0, np.nan])
    assert s["mean"] == 2 and s["n"] == 3 and s["sem"] == pytest.approx(1 / np.sqrt(3))
    t975 = np.sqrt(2 * 0.95 ** 2 / (1 - 0.95 ** 2))
    assert s["ci95"][1] - 2 == pytest.approx(t975 / np.sqrt(3))
    assert s["ci95"][0] == pytest.approx(2 - t975 / np.sqrt(3))


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
    first = read_reconstructions(perfect, max_frames=4)     # a quick evaluation's subset
    for key in ("reconstructions", "targets", "samples"):
        np.testing.assert_array_equal(first[key], data[key][:4])
    with pytest.raises(DataError, match="do not exist"):
        read_reconstructions(str(tmp_path / "none.h5"))
    with pytest.raises(DataError, match=r"expected two arrays of shape \(n, 3, S, S\)"):
        write_reconstructions(str(tmp_path / "x.h5"), np.zeros((2, 3, 8, 8)), np.zeros((2, 1, 8, 8)),
                              np.zeros((2, 5)), ["a"], {})
    assert not os.path.exists(tmp_path / "x.h5")


def test_evaluate_perfect_reconstructions_and_baseline(recon_files):
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
    assert random_mark("evaluation") in res["marks"]
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


# ---------------------------------------------------------------- shuffled reconstructions
def _hand_clips(runs, length=16):
    """Positions of each frame's clip: t-8 ... t+7 of its own run, clamped at the run's ends."""
    out = []
    for t, run in enumerate(runs):
        same = [i for i, r in enumerate(runs) if r == run]
        out.append([min(max(t + o, same[0]), same[-1]) for o in range(-(length // 2), length - length // 2)])
    return np.array(out)


class HandFeatures:
    """A stand-in feature extractor whose six "layers" are simple, known functions of the pixels
    (AlexNet ones of the frame, C3D ones of the frame's clip), so every metric can be recomputed."""

    clip_length = 16
    sources = {"alexnet": "hand-made test features", "c3d": "hand-made test features"}

    @staticmethod
    def alexnet(frames):
        frames = np.asarray(frames, np.float64)
        return {"alexnet_pool2": frames.reshape(len(frames), -1),
                "alexnet_pool5": frames[:, :, ::4, ::4].reshape(len(frames), -1),
                "alexnet_fc6": frames.mean(axis=3).reshape(len(frames), -1)}

    @staticmethod
    def c3d(clip_frames):
        """clip_frames: (b, L, 3, H, W)."""
        b = len(clip_frames)
        return {"c3d_pool2": clip_frames.mean(axis=1).reshape(b, -1),
                "c3d_pool5": clip_frames[:, 0, :, ::4, ::4].reshape(b, -1),
                "c3d_fc6": clip_frames[:, -1].mean(axis=2).reshape(b, -1)}

    def __call__(self, frames, all_frames, positions, clips):
        clip_frames = np.asarray(all_frames, np.float64)[np.asarray(clips)[positions]]
        return {**self.alexnet(frames), **self.c3d(clip_frames)}


def _r(a, b):
    return np.corrcoef(a, b)[0, 1]


def test_evaluate_shuffled_reconstructions_against_independent_numbers(tmp_path):
    rng = np.random.default_rng(3)
    n = 7                                     # odd: the last frame's chance partner is frame 0
    runs = np.array([0, 0, 0, 0, 1, 1, 1])
    frames = np.array([0, 1, 2, 3, 0, 1, 2])
    targets = rng.random((n, 3, 16, 16)).astype(np.float32)
    order = np.array([3, 0, 6, 1, 5, 2, 4])   # every reconstruction is another frame's target
    recon = np.clip(targets[order] + rng.normal(0, 0.05, targets.shape), 0, 1).astype(np.float32)
    samples = np.stack([runs, frames, frames + 4, np.arange(n), np.arange(n)], axis=1)
    path = write_reconstructions(str(tmp_path / "shuffled.h5"), recon, targets, samples,
                                 ["run_a", "run_b"], {"model": "shuffled"})
    res = evaluate(path, str(tmp_path / "out"), EvalConfig(batch_size=4), extractor=HandFeatures(),
                   experiment="baseline", label="shuffled", show_progress=False)

    # independent expectations
    clips = _hand_clips(runs)
    assert clips[0].tolist() == [0] * 9 + [1, 2, 3] + [3] * 4         # run 0 is frames 0..3
    partner = np.array([3, 4, 5, 0, 1, 2, 0])          # (i + 3) mod 6, the odd last frame -> 0
    feats = {}
    for name, images in (("rec", recon), ("gt", targets)):
        images = images.astype(np.float64)
        feats[name] = {**HandFeatures.alexnet(images), **HandFeatures.c3d(images[clips])}
    expected = {}
    for layer in LAYERS:
        rec, gt = feats["rec"][layer], feats["gt"][layer]
        expected[f"{layer}_r"] = [_r(rec[i], gt[i]) for i in range(n)]
        expected[f"{layer}_dist"] = [np.linalg.norm(rec[i] - gt[i]) for i in range(n)]
        expected[f"chance_{layer}_r"] = [_r(rec[i], gt[partner[i]]) for i in range(n)]
        expected[f"chance_{layer}_dist"] = [np.linalg.norm(rec[i] - gt[partner[i]]) for i in range(n)]
    expected["pixcorr"] = [_r(recon[i].ravel(), targets[i].ravel()) for i in range(n)]
    mse = ((recon.astype(np.float64) - targets) ** 2).reshape(n, -1).mean(1)
    expected["psnr"] = 10 * np.log10(1 / mse)
    for layer, key in (("alexnet_pool2", "twoway_alexnet2"), ("alexnet_pool5", "twoway_alexnet5")):
        rec, gt = feats["rec"][layer], feats["gt"][layer]
        expected[key] = [np.mean([_r(rec[i], gt[i]) > _r(rec[i], gt[j]) for j in range(n) if j != i])
                         for i in range(n)]

    import csv

    rows = list(csv.DictReader(open(tmp_path / "out" / "per_frame.csv")))
    assert [int(r["run"]) for r in rows] == runs.tolist()
    for key, values in expected.items():
        got = [float(r[key]) for r in rows]
        np.testing.assert_allclose(got, values, rtol=1e-5, atol=1e-6, err_msg=key)
    saved = json.load(open(tmp_path / "out" / "results.json"))
    for layer in LAYERS:
        key = f"{layer}_r"
        assert saved["metrics"][key]["mean"] == pytest.approx(np.mean(expected[key]))
        assert saved["metrics"][key]["chance_mean"] == pytest.approx(np.mean(expected["chance_" + key]))
    # the shuffle shows: pixel correlation with the true frame is near zero, not one
    assert abs(saved["field_metrics"]["pixcorr"]["mean"]) < 0.2
    assert saved["n_frames"] == n and res["label"] == "shuffled"


def test_feature_extractor_normalises_and_cuts_clips():
    """FeatureExtractor feeds the networks ImageNet-normalised frames ((x - mean) / std with the
    published ImageNet constants) and C3D clips of frames t-8..t+7 in time order."""
    import mxnet as mx

    from brain2pix_gluon.evaluation.features import FeatureExtractor

    seen = {}

    def fake_alexnet(x):
        seen["alexnet"] = x.asnumpy()
        flat = x.reshape((0, -1))
        return flat, flat, flat

    def fake_c3d(x):
        seen["c3d"] = x.asnumpy()
        flat = x.reshape((0, -1))
        return flat, flat, flat

    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    n = 12
    runs = np.array([0] * 9 + [1] * 3)
    level = np.linspace(0.1, 0.9, n)          # frame k is uniformly grey at level[k]
    frames = np.repeat(level[:, None, None, None], 3, axis=1) * np.ones((n, 3, 8, 8))
    ext = FeatureExtractor(fake_alexnet, fake_c3d, alexnet_size=16, c3d_size=8, clip_length=16,
                           normalize=True, ctx=mx.cpu())
    positions = np.array([0, 5, 10])
    ext(frames[positions], frames, positions, clip_indices(runs, 16))
    a = seen["alexnet"]
    assert a.shape == (3, 3, 16, 16)
    np.testing.assert_allclose(a[:, :, 4, 4], (level[positions][:, None] - mean) / std, rtol=1e-5)
    c = seen["c3d"]
    assert c.shape == (3, 3, 16, 8, 8)                    # (clip, channel, time, row, col)
    clips = _hand_clips(runs)
    for b, p in enumerate(positions):
        np.testing.assert_allclose(c[b, :, :, 2, 3].T, (level[clips[p]][:, None] - mean) / std, rtol=1e-5)


def test_alexnet_taps_are_pool2_pool5_and_fc6():
    """The taps are found here by layer type (2nd and 3rd max-pooling, first dense layer) in a
    randomly initialised Gluon AlexNet, and compared with AlexNetTaps."""
    import mxnet as mx
    from mxnet.gluon.model_zoo import vision

    from brain2pix_gluon.evaluation.features import AlexNetTaps

    mx.random.seed(0)
    net = vision.alexnet()
    net.initialize(mx.init.Xavier())
    x = mx.nd.random.uniform(shape=(2, 3, 224, 224))
    net(x)
    pools, dense, h = [], None, x
    for layer in net.features:
        h = layer(h)
        if isinstance(layer, mx.gluon.nn.MaxPool2D):
            pools.append(h.reshape((0, -1)).asnumpy())
        if isinstance(layer, mx.gluon.nn.Dense):
            dense = h.asnumpy()
            break
    pool2, pool5, fc6 = (o.asnumpy() for o in AlexNetTaps(net.features[:10])(x))
    assert pool2.shape == (2, 192 * 13 * 13) and pool5.shape == (2, 256 * 6 * 6) and fc6.shape == (2, 4096)
    np.testing.assert_allclose(pool2, pools[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pool5, pools[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fc6, dense, rtol=1e-5, atol=1e-6)
    assert fc6.min() >= 0                     # after fc6's ReLU
