"""Ground-truth features computed once and reused; baselines scored from their stored evaluation.

Feature networks here are two tiny random convolutions (explicitly random weights, seeded) with
the extractor's interface, so that each evaluation takes well under a second.
"""

import csv
import json
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn

from brain2pix_gluon.config import EvalConfig
from brain2pix_gluon.evaluation.evaluate import evaluate
from brain2pix_gluon.evaluation.feature_cache import resolve_cache_dir, weights_sha256
from brain2pix_gluon.evaluation.metrics import fisheye_valid_mask
from brain2pix_gluon.io.reconstructions import write_reconstructions

N, SIZE = 8, 32


class TinyExtractor:
    """Random (seeded) 2-D and 3-D convolutions standing in for AlexNet and C3D.

    ``calls`` records the frame set (``all_frames``) of every call.
    """

    clip_length, alexnet_size, c3d_size, normalize = 4, SIZE, SIZE, False

    def __init__(self, seed, targets):
        self.ctx = mx.cpu()
        mx.random.seed(seed)
        self.alexnet = nn.Conv2D(4, 5, strides=3, in_channels=3)
        self.c3d = nn.Conv3D(2, (2, 5, 5), strides=(2, 3, 3), in_channels=3)
        for net in (self.alexnet, self.c3d):
            net.initialize(mx.init.Normal(0.1))
        self.targets = targets
        self.calls = []

    def __call__(self, frames, all_frames, positions, clips):
        self.calls.append(np.array(all_frames))
        a = self.alexnet(mx.nd.array(frames)).asnumpy().reshape(len(frames), -1)
        clip = all_frames[np.asarray(clips)[positions].reshape(-1)]
        clip = clip.reshape((len(frames), self.clip_length) + clip.shape[1:]).transpose(0, 2, 1, 3, 4)
        c = self.c3d(mx.nd.array(clip)).asnumpy().reshape(len(frames), -1)
        return {"alexnet_pool2": a, "alexnet_pool5": a[:, ::2], "alexnet_fc6": a[:, :7],
                "c3d_pool2": c, "c3d_pool5": c[:, ::3], "c3d_fc6": c[:, :5]}

    def calls_on(self, frames):
        return sum(np.array_equal(c, frames) for c in self.calls)

    def ground_truth_calls(self):
        return self.calls_on(self.targets)


def _targets(seed=0):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    frames = ndimage.gaussian_filter(rng.random((N, 3, SIZE, SIZE)), (0, 0, 2, 2))
    frames = (frames - frames.min()) / (frames.max() - frames.min())
    return (frames * fisheye_valid_mask(SIZE, 10.0)).astype(np.float32)   # black corners


def _write(path, recon, targets, model):
    samples = np.stack([np.zeros(N, int), np.arange(N), np.arange(N) + 4, np.arange(N),
                        np.arange(N) + 4], axis=1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    config = {"data": {"fisheye": True, "max_ratio": 10.0, "image_size": SIZE}}
    return write_reconstructions(path, recon, targets, samples, ["clip_01"],
                                 {"model": model, "config": config})


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAIN2PIX_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    targets = _targets()
    paths = {}
    for k in range(3):
        recon = np.clip(targets + rng.normal(0, 0.2 + 0.1 * k, targets.shape), 0, 1)
        paths[k] = _write(str(tmp_path / f"model{k}" / "recon" / "reconstructions.h5"),
                          recon.astype(np.float32), targets, f"model{k}")
    return targets, paths, tmp_path


CFG = EvalConfig(batch_size=3)


def _run(path, out, extractor, **kw):
    return evaluate(path, str(out), kw.pop("cfg", CFG), show_progress=False, extractor=extractor,
                    **kw)


def test_cache_is_hit_by_the_second_model_and_results_are_identical(files):
    targets, paths, root = files
    ex = TinyExtractor(0, targets)
    first = _run(paths[0], root / "e0", ex)
    batches = -(-N // CFG.batch_size)
    assert ex.ground_truth_calls() == batches and first["feature_cache"]["ground_truth"] == "miss"
    assert first["feature_cache"]["dir"] == str(root / "cache")
    ex.calls.clear()
    second = _run(paths[1], root / "e1", ex)
    assert ex.ground_truth_calls() == 0 and len(ex.calls) == batches     # only the model's
    assert second["feature_cache"]["ground_truth"] == "hit"
    # the same weights built again (new instance, same seed) still hit
    again = TinyExtractor(0, targets)
    third = _run(paths[2], root / "e2", again)
    assert again.ground_truth_calls() == 0 and third["feature_cache"]["ground_truth"] == "hit"
    # identical with and without the cache
    off = TinyExtractor(0, targets)
    uncached = _run(paths[1], root / "e1_off", off, cfg=EvalConfig(batch_size=3, feature_cache="off"))
    assert off.ground_truth_calls() == batches and uncached["feature_cache"]["ground_truth"] == "off"
    assert uncached["metrics"] == second["metrics"]
    assert uncached["field_metrics"] == second["field_metrics"]
    rows = [open(root / d / "per_frame.csv").read() for d in ("e1", "e1_off")]
    assert rows[0] == rows[1]


def test_other_weights_frames_or_settings_miss(files):
    targets, paths, root = files
    ex = TinyExtractor(0, targets)
    _run(paths[0], root / "a", ex)
    # other random weights of the same shapes
    other = TinyExtractor(1, targets)
    assert _run(paths[0], root / "b", other)["feature_cache"]["ground_truth"] == "miss"
    assert other.ground_truth_calls() > 0
    # one parameter value changed
    changed = TinyExtractor(0, targets)
    w = changed.alexnet.weight.data()
    w[0, 0, 0, 0] += 1e-3
    assert weights_sha256(changed) != weights_sha256(TinyExtractor(0, targets))
    assert _run(paths[0], root / "c", changed)["feature_cache"]["ground_truth"] == "miss"
    # one ground-truth pixel changed (same shapes)
    moved = targets.copy()
    moved[3, 1, 16, 16] += 0.01
    path = _write(str(root / "moved" / "reconstructions.h5"), moved, moved, "moved")
    ex2 = TinyExtractor(0, moved)
    assert _run(path, root / "d", ex2)["feature_cache"]["ground_truth"] == "miss"
    assert ex2.ground_truth_calls() > 0
    # another batch size
    res = _run(paths[0], root / "e", TinyExtractor(0, targets), cfg=EvalConfig(batch_size=4))
    assert res["feature_cache"]["ground_truth"] == "miss"
    # an entry whose stored key differs is never reused
    entry = os.path.join(root / "cache", "gt-" + res["feature_key"], "key.json")
    stored = json.load(open(entry))
    stored["key"] = "0" * 64
    json.dump(stored, open(entry, "w"))
    ex3 = TinyExtractor(0, targets)
    res = _run(paths[0], root / "f", ex3, cfg=EvalConfig(batch_size=4))
    assert res["feature_cache"]["ground_truth"] == "miss" and ex3.ground_truth_calls() > 0


def test_baseline_scored_from_its_stored_evaluation(files):
    targets, paths, root = files
    ex = TinyExtractor(0, targets)
    # reference: no stored evaluation of the baseline yet, so its metrics are computed
    computed = _run(paths[0], root / "ref", ex, baselines={"b": paths[1]})
    assert computed["baselines"]["b"]["per_frame_metrics"] == "computed"
    # the experiments' layout: <variant>/recon/reconstructions.h5 and <variant>/eval
    _run(paths[1], root / "model1" / "eval", ex)
    baseline_recon = _load_recon(paths[1])
    ex.calls.clear()
    read = _run(paths[0], root / "with_stored", ex, baselines={"b": paths[1]})
    assert read["baselines"]["b"]["per_frame_metrics"].startswith("read from")
    assert ex.calls_on(baseline_recon) == 0      # the baseline's features were not computed again
    assert ex.calls_on(_load_recon(paths[0])) > 0
    for key in ("successes", "n", "p"):
        assert read["baselines"]["b"][key] == computed["baselines"]["b"][key]
    # a stored evaluation of other reconstructions is not used
    results = root / "model1" / "eval" / "results.json"
    data = json.load(open(results))
    data["reconstructions_sha256"] = "f" * 64
    json.dump(data, open(results, "w"))
    again = _run(paths[0], root / "again", ex, baselines={"b": paths[1]})
    assert again["baselines"]["b"]["per_frame_metrics"] == "computed"


def _load_recon(path):
    from brain2pix_gluon.io.reconstructions import read_reconstructions

    return read_reconstructions(path)["reconstructions"]


def test_disc_metrics_ignore_the_corners_end_to_end(files):
    targets, _, root = files
    mask = fisheye_valid_mask(SIZE, 10.0)
    recon = targets.copy()
    recon[:, :, ~mask] = np.random.default_rng(3).random((N, 3, (~mask).sum()))
    path = _write(str(root / "corners" / "reconstructions.h5"), recon, targets, "corners")
    res = _run(path, root / "corners_eval", TinyExtractor(0, targets))
    fm = res["field_metrics"]
    assert fm["pixcorr_disc"]["mean"] == pytest.approx(1.0, abs=1e-12)
    assert fm["pixcorr"]["mean"] < 0.99
    assert fm["psnr_disc"]["n"] == 0 and fm["psnr"]["n"] == N     # inf (identical) is dropped
    # at 32 px every corner pixel lies in the 5-px border that SSIM leaves out anyway
    assert fm["ssim_disc"]["mean"] == pytest.approx(fm["ssim"]["mean"])
    assert res["field_mask"]["max_ratio"] == 10.0 and res["field_mask"]["n_pixels"] == mask.sum()
    assert res["field_mask"]["settings_from"] == "reconstruction file's config"
    with open(root / "corners_eval" / "per_frame.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {"pixcorr", "pixcorr_disc", "ssim_disc", "psnr_disc"} <= set(rows[0])
    assert float(rows[0]["pixcorr_disc"]) == pytest.approx(1.0, abs=1e-12)
    assert float(rows[0]["psnr_disc"]) == np.inf


def test_cache_folder_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAIN2PIX_CACHE", str(tmp_path / "c"))
    assert resolve_cache_dir("auto") == str(tmp_path / "c")
    assert resolve_cache_dir("off") is None
    assert resolve_cache_dir(str(tmp_path / "x")) == str(tmp_path / "x")
    monkeypatch.delenv("BRAIN2PIX_CACHE")
    monkeypatch.setenv("BRAIN2PIX_DATA", str(tmp_path / "d"))
    assert resolve_cache_dir("auto") == os.path.join(str(tmp_path / "d"), "eval_features")


def test_unwritable_cache_folder_falls_back_to_computing(files, tmp_path):
    targets, paths, root = files
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    ex = TinyExtractor(0, targets)
    res = _run(paths[0], root / "blocked", ex, cache_dir=str(blocker / "cache"))
    assert res["feature_cache"]["ground_truth"] == "off" and ex.ground_truth_calls() > 0
    reference = _run(paths[0], root / "reference", TinyExtractor(0, targets),
                     cfg=EvalConfig(batch_size=3, feature_cache="off"))
    assert res["metrics"] == reference["metrics"]
