"""``brain2pix evaluate``: every figure of a reconstruction file, with provenance.

Memory is bounded by the batch: features are computed batch by batch and reduced to per-frame
metrics at once. Only AlexNet pool2/pool5 features are kept for all frames (two-way
identification compares every reconstruction with every ground truth: 4 x n x 41,664 float32,
about 690 MB at the paper's n = 1,034).

Chance (for the t-tests) pairs each reconstruction with a non-matching ground truth: frame i with
frame (i + h) mod n', h = n' // 2 over the first n' (even) frames, an involution without fixed
points, so each frame's features are computed once; with odd n the last frame is paired with
frame 0.
"""

import csv
import os

import mxnet as mx
import numpy as np

from .. import __version__
from ..config import EvalConfig, config_to_dict
from ..errors import DataError
from ..io.reconstructions import read_reconstructions, targets_checksum
from ..model_zoo.pretrained import is_random
from ..utils import get_logger, progress, write_json_atomic
from .features import LAYERS, FeatureExtractor, build_feature_nets, clip_indices
from .metrics import (euclidean_rows, flow_epe, pearson_rows, pixcorr, psnr, ssim_gray,
                      two_way_identification, zscore_rows)
from .stats import better, binomial_vs_baseline, summarize, ttest_vs_chance

__all__ = ["METRICS", "chance_partners", "frame_metrics", "evaluate"]

METRICS = tuple(f"{layer}_{kind}" for layer in LAYERS for kind in ("r", "dist"))


def chance_partners(n):
    """The non-matching frame paired with each frame for chance (see module docstring)."""
    if n < 2:
        raise DataError(f"chance needs at least 2 test frames, got {n}")
    even = n - (n % 2)
    h = even // 2
    partner = (np.arange(n) + h) % even
    if n % 2:
        partner[-1] = 0
    return partner


def _batches(n, batch_size):
    """Batches of positions; pairs (i, partner(i)) stay in the same batch when n is even."""
    even = n - (n % 2)
    h = even // 2
    half = max(batch_size // 2, 1)
    for start in range(0, h, half):
        first = np.arange(start, min(start + half, h))
        yield np.concatenate([first, first + h])
    if n % 2:
        yield np.array([n - 1])


def frame_metrics(reconstructions, targets, runs, extractor, batch_size=16, show_progress=True):
    """Per-frame feature metrics (model and chance) plus the field's image metrics.

    Parameters
    ----------
    reconstructions, targets : ndarray, shape (n, 3, H, W)
    runs : ndarray of int, shape (n,)
    extractor : FeatureExtractor

    Returns
    -------
    per_frame : dict of str -> ndarray, shape (n,)
        ``<layer>_r``, ``<layer>_dist``, their ``chance_...`` versions, ``pixcorr``, ``ssim``,
        ``psnr``, ``twoway_alexnet2``, ``twoway_alexnet5``.
    """
    n = len(reconstructions)
    partner = chance_partners(n)
    clips = clip_indices(runs, extractor.clip_length)
    out = {k: np.full(n, np.nan) for k in METRICS}
    out.update({"chance_" + k: np.full(n, np.nan) for k in METRICS})
    keep = {"alexnet_pool2": [None] * 2, "alexnet_pool5": [None] * 2}
    total = sum(1 for _ in _batches(n, batch_size))
    for pos in progress(_batches(n, batch_size), total=total, desc="evaluate",
                        enabled=show_progress, unit="batch"):
        rec = extractor(reconstructions[pos], reconstructions, pos, clips)
        gt = extractor(targets[pos], targets, pos, clips)
        extra = np.setdiff1d(partner[pos], pos)
        gt_extra = extractor(targets[extra], targets, extra, clips) if extra.size else None
        in_batch = {int(p): k for k, p in enumerate(pos)}
        in_extra = {int(p): k for k, p in enumerate(extra)}
        for layer in LAYERS:
            r, g = rec[layer], gt[layer]
            out[f"{layer}_r"][pos] = pearson_rows(r, g)
            out[f"{layer}_dist"][pos] = euclidean_rows(r, g)
            g_chance = np.stack([g[in_batch[p]] if p in in_batch else gt_extra[layer][in_extra[p]]
                                 for p in map(int, partner[pos])])
            out[f"chance_{layer}_r"][pos] = pearson_rows(r, g_chance)
            out[f"chance_{layer}_dist"][pos] = euclidean_rows(r, g_chance)
        for layer in keep:
            for side, feats in enumerate((rec, gt)):
                if keep[layer][side] is None:
                    keep[layer][side] = np.zeros((n, feats[layer].shape[1]), np.float32)
                keep[layer][side][pos] = zscore_rows(feats[layer])
    out["twoway_alexnet2"] = two_way_identification(*keep["alexnet_pool2"])
    out["twoway_alexnet5"] = two_way_identification(*keep["alexnet_pool5"])
    out["pixcorr"] = pixcorr(reconstructions, targets)
    out["ssim"] = ssim_gray(reconstructions, targets)
    out["psnr"] = psnr(reconstructions, targets)
    return out


def _summaries(per_frame):
    metrics = {}
    for key in METRICS:
        higher = key.endswith("_r")
        metrics[key] = {**summarize(per_frame[key]),
                        **ttest_vs_chance(per_frame[key], per_frame["chance_" + key], higher)}
    return metrics


def _load(path, max_frames):
    data = read_reconstructions(path)
    if max_frames:
        for key in ("reconstructions", "targets", "samples"):
            data[key] = data[key][:max_frames]
    return data


def evaluate(recon_path, out_dir, eval_config=None, baselines=None, experiment="misc", label=None,
             ctx=None, show_progress=True, extractor=None):
    """Evaluate a reconstruction file (and compare it with baselines).

    Parameters
    ----------
    recon_path : str
        HDF5 written by ``brain2pix reconstruct`` or a baseline.
    out_dir : str
        Receives ``results.json`` and ``per_frame.csv``.
    eval_config : EvalConfig, optional
    baselines : dict of str -> str, optional
        Name -> reconstruction file of the same test frames (binomial tests). The ground truths
        must be identical, frame by frame (same sha256 of the target frames); otherwise
        :class:`DataError`.
    experiment : str
        Table group: ``baseline``, ``roi``, ``ablation``, ``data_size`` (or anything else).
    label : str, optional
        Row name in the tables (default: the file's model name).
    extractor : FeatureExtractor, optional
        Injected feature networks (default: built from ``eval_config``).

    Returns
    -------
    dict
        What ``results.json`` holds.
    """
    cfg = eval_config or EvalConfig()
    ctx = ctx or mx.cpu()
    log = get_logger()
    data = _load(recon_path, cfg.max_frames)
    ours = targets_checksum(data["targets"])    # of the frames evaluated (max_frames applied)
    others = {}
    for name, path in (baselines or {}).items():    # refused before any feature is computed
        other = others[name] = _load(path, cfg.max_frames)
        theirs_sum = targets_checksum(other["targets"])
        if theirs_sum != ours:
            raise DataError(
                f"baseline {name} ({path}): its ground-truth frames differ from those of "
                f"{recon_path} (sha256 of the {len(other['targets'])} target frames "
                f"{theirs_sum[:12]}... vs {ours[:12]}... of {len(data['targets'])}); both must "
                f"reconstruct the same test set in the same order (same prepared test.h5)")
    sources = None
    if extractor is None:
        alex, c3d, sources = build_feature_nets(cfg.feature_weights, ctx, cfg.seed)
        extractor = FeatureExtractor(alex, c3d, cfg.alexnet_size, cfg.c3d_size, cfg.clip_length,
                                     cfg.imagenet_normalize, ctx)
    sources = sources or getattr(extractor, "sources", {"alexnet": "injected", "c3d": "injected"})
    runs, frames = data["samples"][:, 0], data["samples"][:, 1]
    per_frame = frame_metrics(data["reconstructions"], data["targets"], runs, extractor,
                              cfg.batch_size, show_progress)
    epe = flow_epe(data["reconstructions"], data["targets"], runs, frames)
    attrs = data["attrs"]
    random_eval = any(is_random(s) for s in sources.values())
    recon_weights = attrs.get("weights", {})
    random_model = any(is_random(v) for v in recon_weights.values()) if isinstance(recon_weights, dict) else False
    marks = []
    if random_eval:
        marks.append("RANDOM EVALUATION WEIGHTS")
    if random_model:
        marks.append("MODEL TRAINED WITH RANDOM FEATURE-LOSS WEIGHTS")
    if attrs.get("profile") == "quick" or cfg.max_frames:
        marks.append("QUICK RUN")
    results = {
        "label": label or attrs.get("model", os.path.basename(recon_path)),
        "experiment": experiment,
        "source": os.path.abspath(recon_path),
        "package_version": __version__,
        "marks": marks,
        "weights": {"evaluation": sources, "model": recon_weights},
        "evaluation_config": config_to_dict(cfg) if hasattr(cfg, "__dataclass_fields__") else {},
        "clip_rule": f"{cfg.clip_length} consecutive frames of the run centred on the frame "
                     f"(t-{cfg.clip_length // 2}..t+{cfg.clip_length - cfg.clip_length // 2 - 1}), "
                     f"clamped at run ends; resized to {cfg.c3d_size}; ImageNet normalisation "
                     f"{'on' if cfg.imagenet_normalize else 'off'}",
        "chance_rule": "frame i vs ground truth of frame (i + n'/2) mod n' (n' = even part of n)",
        "n_frames": int(len(runs)),
        "targets_sha256": ours,
        "metrics": _summaries(per_frame),
        "field_metrics": {k: summarize(per_frame[k]) for k in
                          ("pixcorr", "ssim", "psnr", "twoway_alexnet2", "twoway_alexnet5")},
        "baselines": {},
    }
    results["field_metrics"]["flow_epe"] = summarize(epe)
    for name, path in (baselines or {}).items():
        other = others[name]
        theirs = frame_metrics(other["reconstructions"], other["targets"],
                               other["samples"][:, 0], extractor, cfg.batch_size, show_progress)
        wins = [better(per_frame[k], theirs[k], k.endswith("_r")) for k in METRICS]
        wins = np.concatenate(wins)
        results["baselines"][name] = binomial_vs_baseline(int(wins.sum()), wins.size)
        results["baselines"][name]["source"] = os.path.abspath(path)
    os.makedirs(out_dir, exist_ok=True)
    write_json_atomic(os.path.join(out_dir, "results.json"), results)
    _write_per_frame(os.path.join(out_dir, "per_frame.csv"), data["samples"], per_frame)
    log.info("evaluated %d frames of %s -> %s%s", len(runs), recon_path, out_dir,
             " [" + ", ".join(marks) + "]" if marks else "")
    return results


def _write_per_frame(path, samples, per_frame):
    columns = list(METRICS) + ["chance_" + k for k in METRICS] + [
        "pixcorr", "ssim", "psnr", "twoway_alexnet2", "twoway_alexnet5"]
    tmp = path + ".partial"
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "run", "frame"] + columns)
        for i in range(len(samples)):
            writer.writerow([i, int(samples[i, 0]), int(samples[i, 1])]
                            + [f"{per_frame[c][i]:.6g}" for c in columns])
    os.replace(tmp, path)

