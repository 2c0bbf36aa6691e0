"""``brain2pix evaluate``: every figure of a reconstruction file, with provenance.

The ground truth's features are computed once per test set and feature networks and kept in a
cache folder (:mod:`.feature_cache`; ``evaluation.feature_cache``), so every further model and
baseline scored on the same test set costs only its own reconstructions' features. The
reconstructions' features are computed batch by batch and reduced to per-frame metrics at once;
only AlexNet pool2/pool5 are kept for all frames (two-way identification compares every
reconstruction with every ground truth: 4 x n x 41,664 float32, about 690 MB at the paper's
n = 1,034). A baseline given with ``baselines`` is scored from the per-frame metrics of its own
earlier evaluation when one of the same reconstructions and feature key is found
(:func:`stored_per_frame`), else computed.

Pixel metrics are reported over the whole frame (``pixcorr``, ``ssim``, ``psnr``, ``flow_epe``)
and inside the fisheye frame's valid field (``*_disc``, :func:`field_mask`): the warped frames'
corners are black in every frame and would otherwise reward any output that is black there.

Chance (for the t-tests) pairs each reconstruction with a non-matching ground truth: frame i with
frame (i + h) mod n', h = n' // 2 over the first n' (even) frames, an involution without fixed
points; with odd n the last frame is paired with frame 0.
"""

import csv
import json
import os

import mxnet as mx
import numpy as np

from .. import __version__
from ..config import DataConfig, EvalConfig, config_to_dict
from ..errors import DataError
from ..io.reconstructions import read_reconstructions, targets_checksum
from ..locking import FolderLock
from ..provenance import caption_suffix, is_random, marks_from_attrs, run_marks
from ..utils import array_sha256, get_logger, progress, replacing, write_json_atomic
from .feature_cache import ground_truth_features, ground_truth_key, resolve_cache_dir
from .features import LAYERS, clip_indices, feature_extractor
from .metrics import (FIELD_METRICS, euclidean_rows, fisheye_valid_mask, flow_epe, pearson_rows,
                      pixel_metrics, two_way_identification, zscore_rows)
from .stats import better, binomial_vs_baseline, summarize, ttest_vs_chance

__all__ = ["METRICS", "FIELD_METRICS", "TWOWAY", "TWOWAY_LAYERS", "chance_partners",
           "frame_metrics", "field_mask",
           "stored_per_frame", "evaluate"]

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


# per-frame two-way identification (chance 50 %) on these AlexNet layers, and its keys
TWOWAY_LAYERS = {"alexnet_pool2": "twoway_alexnet2", "alexnet_pool5": "twoway_alexnet5"}
TWOWAY = tuple(TWOWAY_LAYERS.values())


def frame_metrics(reconstructions, targets, runs, extractor, batch_size=16, show_progress=True,
                  gt_features=None, mask=None):
    """Per-frame feature metrics (model and chance) plus the field's image metrics.

    Parameters
    ----------
    reconstructions, targets : ndarray, shape (n, 3, H, W)
    runs : ndarray of int, shape (n,)
    extractor : FeatureExtractor
    gt_features : dict of str -> ndarray, shape (n, d_layer), optional
        The ground truth's features (:func:`~.feature_cache.ground_truth_features`); computed
        here when not given.
    mask : ndarray of bool, shape (H, W), optional
        Valid field of the frames (:func:`~.metrics.fisheye_valid_mask`) for the ``*_disc``
        metrics; the whole frame when not given.

    Returns
    -------
    per_frame : dict of str -> ndarray, shape (n,)
        ``<layer>_r``, ``<layer>_dist``, their ``chance_...`` versions, ``pixcorr``, ``ssim``,
        ``psnr`` (whole frame), ``pixcorr_disc``, ``ssim_disc``, ``psnr_disc`` (inside the mask),
        ``twoway_alexnet2``, ``twoway_alexnet5``.
    """
    n = len(reconstructions)
    partner = chance_partners(n)
    clips = clip_indices(runs, extractor.clip_length)
    if gt_features is None:
        gt_features = ground_truth_features(targets, clips, extractor, batch_size, None,
                                            show_progress)
    out = {k: np.full(n, np.nan) for k in METRICS}
    out.update({"chance_" + k: np.full(n, np.nan) for k in METRICS})
    keep = dict.fromkeys(TWOWAY_LAYERS)
    starts = range(0, n, batch_size)
    for start in progress(starts, total=len(starts), desc="evaluate", enabled=show_progress,
                          unit="batch"):
        pos = np.arange(start, min(start + batch_size, n))
        rec = extractor(reconstructions[pos], reconstructions, pos, clips)
        for layer in LAYERS:
            r, g = rec[layer], np.asarray(gt_features[layer][pos])
            g_chance = np.asarray(gt_features[layer][partner[pos]])
            out[f"{layer}_r"][pos] = pearson_rows(r, g)
            out[f"{layer}_dist"][pos] = euclidean_rows(r, g)
            out[f"chance_{layer}_r"][pos] = pearson_rows(r, g_chance)
            out[f"chance_{layer}_dist"][pos] = euclidean_rows(r, g_chance)
        for layer in keep:
            if keep[layer] is None:
                keep[layer] = np.zeros((n, rec[layer].shape[1]), np.float32)
            keep[layer][pos] = zscore_rows(rec[layer])
    for layer, key in TWOWAY_LAYERS.items():
        gt = np.zeros(keep[layer].shape, np.float32)
        for start in starts:
            gt[start:start + batch_size] = zscore_rows(gt_features[layer][start:start + batch_size])
        out[key] = two_way_identification(keep[layer], gt)
    out.update(pixel_metrics(reconstructions, targets, mask))
    return out


def _summaries(per_frame):
    metrics = {}
    for key in METRICS:
        higher = key.endswith("_r")
        metrics[key] = {**summarize(per_frame[key]),
                        **ttest_vs_chance(per_frame[key], per_frame["chance_" + key], higher)}
    return metrics


def field_mask(attrs, size):
    """The valid field of a reconstruction file's frames and where its settings came from.

    The warp settings are read from the file's ``config`` attribute (``data.fisheye``,
    ``data.max_ratio``), else from the prepared file it names as ``source``, else the defaults
    of :class:`~brain2pix_gluon.config.DataConfig`.

    Returns
    -------
    mask : ndarray of bool, shape (size, size)
    info : dict
        ``fisheye``, ``max_ratio``, ``settings_from``, ``rule``, ``n_pixels``, ``fraction``.
    """
    settings, origin = None, None
    config = attrs.get("config")
    if isinstance(config, dict) and isinstance(config.get("data"), dict):
        settings, origin = config["data"], "reconstruction file's config"
    source = attrs.get("source")
    if settings is None and isinstance(source, str) and os.path.isfile(source):
        try:
            from ..io.prepared import PreparedSplit

            stored = PreparedSplit(source).config
            if "max_ratio" in stored:
                settings, origin = stored, f"prepared file {source}"
        except (OSError, ValueError, DataError):
            settings = None
    if settings is None:
        settings, origin = {}, "DataConfig defaults (the file records no warp settings)"
    defaults = DataConfig()
    fisheye = bool(settings.get("fisheye", defaults.fisheye))
    max_ratio = float(settings.get("max_ratio", defaults.max_ratio))
    mask = fisheye_valid_mask(size, max_ratio, fisheye)
    return mask, {"fisheye": fisheye, "max_ratio": max_ratio, "settings_from": origin,
                  "rule": "pixels whose fisheye source sample lies inside the frame "
                          "(*_disc metrics); whole frame otherwise",
                  "n_pixels": int(mask.sum()), "fraction": float(mask.mean())}


def stored_per_frame(recon_path, recon_sha256, feature_key, n_frames, folders=None,
                     columns=METRICS):
    """Per-frame metrics of an earlier evaluation of the same reconstructions, if there is one.

    Looks for ``results.json`` + ``per_frame.csv`` in ``folders``, by default
    ``<recon folder>/../eval`` (the layout of the experiments) and the reconstruction's own
    folder. An evaluation is used only when it recorded the same reconstructions (sha256 of the
    evaluated arrays), the same ground-truth feature key and the same number of frames.

    Parameters
    ----------
    columns : sequence of str
        The per-frame columns to read (default the 12 feature metrics).

    Returns
    -------
    per_frame : dict of str -> ndarray, shape (n_frames,), or None
    folder : str or None
    """
    if feature_key is None:
        return None, None
    if folders is None:
        here = os.path.dirname(os.path.abspath(recon_path))
        folders = (os.path.join(os.path.dirname(here), "eval"), here)
    for folder in folders:
        try:
            with open(os.path.join(folder, "results.json")) as handle:
                stored = json.load(handle)
            if (stored.get("reconstructions_sha256") != recon_sha256
                    or stored.get("feature_key") != feature_key
                    or stored.get("n_frames") != n_frames):
                continue
            with open(os.path.join(folder, "per_frame.csv"), newline="") as handle:
                rows = list(csv.DictReader(handle))
            if len(rows) != n_frames:
                continue
            return {k: np.array([float(row[k]) for row in rows]) for k in columns}, folder
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None, None


def evaluate(recon_path, out_dir, eval_config=None, baselines=None, experiment="misc", label=None,
             ctx=None, show_progress=True, extractor=None, cache_dir=None, reuse_from=()):
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
    cache_dir : str, optional
        Folder of the ground-truth feature cache; default from ``eval_config.feature_cache``
        (see :func:`~.feature_cache.resolve_cache_dir`).
    reuse_from : sequence of str
        Results folders of other evaluations: one of the same reconstructions (the same arrays,
        ground-truth features and frames, :func:`stored_per_frame`) gives its per-frame metrics
        instead of computing them again (variants that share a training).

    Returns
    -------
    dict
        What ``results.json`` holds.
    """
    with FolderLock(out_dir, "brain2pix evaluate"):     # one writer per results folder
        return _evaluate(recon_path, out_dir, eval_config or EvalConfig(), baselines, experiment,
                         label, ctx or mx.cpu(), show_progress, extractor, cache_dir, reuse_from)


def _evaluate(recon_path, out_dir, cfg, baselines, experiment, label, ctx, show_progress,
              extractor, cache_dir, reuse_from=()):
    data, others = _load_matched(recon_path, baselines or {}, cfg.max_frames)
    extractor, sources = _feature_extractor(cfg, ctx, extractor)
    runs, frames = data.samples.run, data.samples.frame
    cache_dir = cache_dir or resolve_cache_dir(getattr(cfg, "feature_cache", "auto"))
    clips = clip_indices(runs, extractor.clip_length)
    feature_key, _ = ground_truth_key(data["targets"], clips, extractor, cfg.batch_size)
    cache = {}
    gt_features = ground_truth_features(data["targets"], clips, extractor, cfg.batch_size,
                                        cache_dir, show_progress, cache)
    if cache.get("cache") == "miss":
        _say_where_the_cache_is(cache_dir, out_dir)
    mask, mask_info = field_mask(data["attrs"], data["targets"].shape[-1])
    recon_sha = array_sha256(np.asarray(data["reconstructions"], np.float32))
    per_frame, reused = stored_per_frame(recon_path, recon_sha, feature_key, len(runs),
                                         list(reuse_from), _PER_FRAME_COLUMNS)
    if per_frame is None:
        per_frame = frame_metrics(data["reconstructions"], data["targets"], runs, extractor,
                                  cfg.batch_size, show_progress, gt_features, mask)
    else:
        get_logger().info("%s: per-frame metrics of the same reconstructions from %s", recon_path,
                          reused)
    results = {
        "label": label or data["attrs"].get("model", os.path.basename(recon_path)),
        "experiment": experiment,
        "source": os.path.abspath(recon_path),
        "package_version": __version__,
        "marks": evaluation_marks(sources, data["attrs"], cfg),
        "weights": {"evaluation": sources, "model": data["attrs"].get("weights", {})},
        "evaluation_config": config_to_dict(cfg) if hasattr(cfg, "__dataclass_fields__") else {},
        **_rules(cfg),
        "n_frames": int(len(runs)),
        "reconstructions_sha256": recon_sha,
        "per_frame_metrics_from": reused or "computed",
        "targets_sha256": targets_checksum(data["targets"]),
        "feature_key": feature_key,
        "feature_cache": {"dir": cache_dir, "ground_truth": cache.get("cache")},
        "field_mask": mask_info,
        "metrics": _summaries(per_frame),
        "field_metrics": {k: summarize(per_frame[k]) for k in FIELD_METRICS + TWOWAY},
        "baselines": {},
    }
    for name, epe in (("flow_epe", flow_epe(data["reconstructions"], data["targets"], runs,
                                            frames)),
                      ("flow_epe_disc", flow_epe(data["reconstructions"], data["targets"], runs,
                                                 frames, mask))):
        results["field_metrics"][name] = summarize(epe)
    for name, path in (baselines or {}).items():
        theirs, origin = _baseline_per_frame(path, others[name], data["targets"], feature_key,
                                             gt_features, extractor, cfg.batch_size, cache_dir,
                                             show_progress)
        results["baselines"][name] = _binomial_against(per_frame, theirs, path, origin)
    os.makedirs(out_dir, exist_ok=True)
    # results.json last: it marks a complete evaluation (a rerun skips one whose results.json
    # is newer than the reconstructions), so a kill between the two never leaves a stale csv
    _write_per_frame(os.path.join(out_dir, "per_frame.csv"), data.samples, per_frame)
    write_json_atomic(os.path.join(out_dir, "results.json"), results)
    get_logger().info("evaluated %d frames of %s -> %s%s", len(runs), recon_path, out_dir,
                      caption_suffix(results["marks"]))
    return results


_CACHES_ANNOUNCED = set()


def _say_where_the_cache_is(cache_dir, out_dir):
    """Log, once per process, that the feature cache was written outside the results folder."""
    cache_dir = os.path.abspath(cache_dir)
    inside = os.path.commonpath([cache_dir, os.path.abspath(out_dir)]) == \
        os.path.abspath(out_dir)
    if inside or cache_dir in _CACHES_ANNOUNCED:
        return
    _CACHES_ANNOUNCED.add(cache_dir)
    get_logger().info("ground-truth features cached in %s (outside %s; shared by every later "
                      "evaluation of the same test set); set evaluation.feature_cache to a "
                      "folder, or to off, or $BRAIN2PIX_CACHE, to change it", cache_dir, out_dir)


def _load_matched(recon_path, baselines, max_frames):
    """The reconstructions to evaluate and those of each baseline, refused (before any feature is
    computed) when a baseline's ground truth is not the same test set in the same order."""
    data = read_reconstructions(recon_path, max_frames)
    ours = targets_checksum(data["targets"])    # of the frames evaluated (max_frames applied)
    others = {}
    for name, path in baselines.items():
        other = others[name] = read_reconstructions(path, max_frames)
        theirs = targets_checksum(other["targets"])
        if theirs != ours:
            raise DataError(
                f"baseline {name} ({path}): its ground-truth frames differ from those of "
                f"{recon_path} (sha256 of the {len(other['targets'])} target frames "
                f"{theirs[:12]}... vs {ours[:12]}... of {len(data['targets'])}); both must "
                f"reconstruct the same test set in the same order (same prepared test.h5)")
    return data, others


def _feature_extractor(cfg, ctx, extractor=None):
    """The AlexNet/C3D extractor under the configured weights (or the injected one) and the
    source of its weights."""
    if extractor is None:
        extractor = feature_extractor(cfg, ctx)
    return extractor, getattr(extractor, "sources", {"alexnet": "injected", "c3d": "injected"})


def evaluation_marks(sources, recon_attrs, cfg):
    """Marks of an evaluation: random evaluation networks, random networks the model was made
    with (its feature loss, or baseline 1's encoding features), quick runs or subsets."""
    weights = recon_attrs.get("weights") or {}
    roles = {"evaluation": next((s for s in sources.values() if is_random(s)), None)}
    if isinstance(weights, dict):
        roles.update(weights)
    profile = recon_attrs.get("profile", "paper")
    if profile == "paper" and cfg.max_frames:
        profile = "quick"       # a subset of the test frames is a quick result too
    # and whatever the reconstructions were marked with (e.g. a time-shuffled control)
    return sorted(set(run_marks(roles, profile)) | set(marks_from_attrs(recon_attrs)))


def _rules(cfg):
    """The evaluation's fixed choices, in words, for results.json."""
    before, after = cfg.clip_length // 2, cfg.clip_length - cfg.clip_length // 2 - 1
    return {"clip_rule": f"{cfg.clip_length} consecutive frames of the run centred on the frame "
                         f"(t-{before}..t+{after}), clamped at run ends; resized to "
                         f"{cfg.c3d_size}; ImageNet normalisation "
                         f"{'on' if cfg.imagenet_normalize else 'off'}",
            "chance_rule": "frame i vs ground truth of frame (i + n'/2) mod n' (n' = even part "
                           "of n)"}


def _binomial_against(per_frame, theirs, path, origin):
    """Binomial test of every (frame, metric) where ours is better than a baseline's."""
    wins = np.concatenate([better(per_frame[k], theirs[k], k.endswith("_r")) for k in METRICS])
    out = binomial_vs_baseline(int(wins.sum()), wins.size)
    out.update(source=os.path.abspath(path), per_frame_metrics=origin)
    return out


def _baseline_per_frame(path, other, targets, feature_key, gt_features, extractor, batch_size,
                        cache_dir, show_progress):
    """A baseline's per-frame feature metrics: its stored evaluation, else computed.

    The ground-truth features are shared with the model's when the baseline holds the same
    target frames; otherwise they come from the cache under the baseline's own key.
    """
    n = len(other["samples"])
    if not np.array_equal(other["targets"], targets):
        clips = clip_indices(other.samples.run, extractor.clip_length)
        feature_key, _ = ground_truth_key(other["targets"], clips, extractor, batch_size)
        gt_features = ground_truth_features(other["targets"], clips, extractor, batch_size,
                                            cache_dir, show_progress)
    sha = array_sha256(np.asarray(other["reconstructions"], np.float32))
    stored, folder = stored_per_frame(path, sha, feature_key, n)
    if stored is not None:
        get_logger().info("baseline %s: per-frame metrics of its evaluation in %s", path, folder)
        return stored, f"read from {folder}"
    theirs = frame_metrics(other["reconstructions"], other["targets"], other.samples.run,
                           extractor, batch_size, show_progress, gt_features)
    return theirs, "computed"


_PER_FRAME_COLUMNS = list(METRICS) + ["chance_" + k for k in METRICS] + list(FIELD_METRICS) \
    + list(TWOWAY)


def _write_per_frame(path, samples, per_frame):
    columns = _PER_FRAME_COLUMNS
    with replacing(path, path + ".partial") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "run", "frame"] + columns)
        for i in range(len(samples)):
            writer.writerow([i, int(samples.run[i]), int(samples.frame[i])]
                            + [repr(float(per_frame[c][i])) for c in columns])

