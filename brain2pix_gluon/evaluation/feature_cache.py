"""Ground-truth features computed once per test set and feature networks, kept on disk.

Every model and baseline of an experiment is scored against the same ground truth, so its
AlexNet and C3D features are the same computation repeated. They are stored in a cache folder
under a key that hashes everything they depend on:

* the ground-truth frames (their bytes, dtype and shape) and the C3D clip of every frame (which
  encodes the runs and the clip rule);
* the feature networks' parameters (structural names, shapes, dtypes and values: two networks
  with the same shapes but other weights never share an entry);
* the sizes, the normalisation, the batch size and the device type of the computation (the
  cached arrays are bit-identical to a fresh computation with the same settings);
* :data:`FEATURES_VERSION`, raised whenever the extraction code changes.

An entry is a folder ``gt-<key>/`` holding one ``.npy`` per layer and ``key.json``; it is written
under a temporary name and renamed into place, so a reader sees a complete entry or none.
"""

import hashlib
import json
import os
import shutil
import uuid

import numpy as np

from ..utils import array_sha256, get_logger, progress, reserve_space, resolve_data_home
from .features import LAYERS

__all__ = ["FEATURES_VERSION", "weights_sha256", "resolve_cache_dir",
           "ground_truth_key", "ground_truth_features"]

FEATURES_VERSION = 1


def _block_sha256(digest, block, prefix):
    for name, param in sorted(block._collect_params_with_prefix().items()):
        data = param.data().asnumpy()
        digest.update(f"{prefix}.{name}:{data.dtype.str}{data.shape}".encode())
        digest.update(memoryview(np.ascontiguousarray(data)).cast("B"))


def weights_sha256(extractor):
    """sha256 of the feature networks' parameters, computed once per extractor.

    Uses ``extractor.weights_sha256`` when the extractor provides it (a string), otherwise hashes
    the parameters of ``extractor.alexnet`` and ``extractor.c3d`` by their structural names (so
    two instances of the same weights agree). Returns None for an extractor with neither (its
    features are then never cached).
    """
    known = getattr(extractor, "weights_sha256", None)
    if isinstance(known, str):
        return known
    blocks = [getattr(extractor, name, None) for name in ("alexnet", "c3d")]
    if any(b is None or not hasattr(b, "_collect_params_with_prefix") for b in blocks):
        return None
    digest = hashlib.sha256()
    for name, block in zip(("alexnet", "c3d"), blocks):
        _block_sha256(digest, block, name)
    extractor.weights_sha256 = digest.hexdigest()
    return extractor.weights_sha256


def resolve_cache_dir(setting="auto"):
    """Folder of the feature cache, or None when caching is off.

    ``setting``: ``"off"``; a folder; or ``"auto"``: ``$BRAIN2PIX_CACHE`` when set, else
    ``eval_features`` in the data home (``$BRAIN2PIX_DATA`` or ``~/.cache/brain2pix_gluon``).
    """
    if setting in (None, "", "off", "none", False):
        return None
    if setting == "auto":
        env = os.environ.get("BRAIN2PIX_CACHE")
        if env:
            return os.path.abspath(os.path.expanduser(env))
        return os.path.join(resolve_data_home(), "eval_features")
    return os.path.abspath(os.path.expanduser(os.fspath(setting)))


def ground_truth_key(targets, clips, extractor, batch_size):
    """The cache key of the ground truth's features (hex sha256) and what went into it.

    Returns
    -------
    key : str or None
        None when the extractor's weights cannot be identified.
    parts : dict
    """
    weights = weights_sha256(extractor)
    ctx = getattr(extractor, "ctx", None)
    parts = {
        "features_version": FEATURES_VERSION,
        "layers": list(LAYERS),
        "targets_sha256": array_sha256(np.asarray(targets, np.float32)),
        "clips_sha256": array_sha256(np.asarray(clips, np.int64)),
        "weights_sha256": weights,
        "alexnet_size": getattr(extractor, "alexnet_size", None),
        "c3d_size": getattr(extractor, "c3d_size", None),
        "clip_length": getattr(extractor, "clip_length", None),
        "imagenet_normalize": getattr(extractor, "normalize", None),
        "batch_size": int(batch_size),
        "device_type": getattr(ctx, "device_type", None),
        "extractor": type(extractor).__module__ + "." + type(extractor).__qualname__,
    }
    if weights is None:
        return None, parts
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return key, parts


def _compute(targets, clips, extractor, batch_size, show_progress, allocate):
    n = len(targets)
    out = None
    for start in progress(range(0, n, batch_size), total=-(-n // batch_size),
                          desc="ground-truth features", enabled=show_progress, unit="batch"):
        pos = np.arange(start, min(start + batch_size, n))
        feats = extractor(targets[pos], targets, pos, clips)
        if out is None:
            out = {layer: allocate(layer, (n, feats[layer].shape[1])) for layer in LAYERS}
        for layer in LAYERS:
            out[layer][pos] = feats[layer]
    return out


def _memmap(path, shape):
    """A float32 ``.npy`` memory map whose blocks are reserved on disk (a full disk is an
    OSError here, not a SIGBUS at the first write)."""
    array = np.lib.format.open_memmap(path, "w+", np.float32, shape)
    reserve_space(path)
    return array


def _read_entry(folder, key, n):
    """The layers of a complete entry whose key matches, else None."""
    try:
        with open(os.path.join(folder, "key.json")) as handle:
            stored = json.load(handle)
        if stored.get("key") != key:
            return None
        feats = {layer: np.load(os.path.join(folder, layer + ".npy"), mmap_mode="r")
                 for layer in LAYERS}
    except (OSError, ValueError):
        return None
    if any(f.ndim != 2 or f.shape[0] != n or f.dtype != np.float32 for f in feats.values()):
        return None
    return feats


def ground_truth_features(targets, clips, extractor, batch_size=16, cache_dir=None,
                          show_progress=True, stats=None):
    """Features of every ground-truth frame for the six layers, from the cache when possible.

    Parameters
    ----------
    targets : ndarray, shape (n, 3, H, W)
    clips : ndarray of int, shape (n, clip_length)
        From :func:`~brain2pix_gluon.evaluation.features.clip_indices`.
    extractor : FeatureExtractor
    batch_size : int
        Frames per forward pass (part of the key).
    cache_dir : str, optional
        Cache folder (see :func:`resolve_cache_dir`); None computes in memory.
    stats : dict, optional
        Receives ``cache`` = ``"hit"``, ``"miss"`` or ``"off"`` and ``key``.

    Returns
    -------
    dict of str -> ndarray, shape (n, d_layer), float32
        Read-only memory maps when they come from the cache.
    """
    stats = {} if stats is None else stats
    n = len(targets)
    key, parts = (None, None) if cache_dir is None else \
        ground_truth_key(targets, clips, extractor, batch_size)
    stats["key"] = key
    if key is None:
        stats["cache"] = "off"
        return _compute(targets, clips, extractor, batch_size, show_progress,
                        lambda layer, shape: np.empty(shape, np.float32))
    folder = os.path.join(cache_dir, "gt-" + key)
    feats = _read_entry(folder, key, n)
    if feats is not None:
        stats["cache"] = "hit"
        get_logger().info("ground-truth features from the cache %s", folder)
        return feats
    stats["cache"] = "miss"
    tmp = os.path.join(cache_dir, f".partial-{uuid.uuid4().hex}")
    try:
        os.makedirs(tmp)
    except OSError as exc:
        get_logger().warning("feature cache %s cannot be written (%s); computing the "
                             "ground-truth features without it", cache_dir, exc)
        stats["cache"] = "off"
        return _compute(targets, clips, extractor, batch_size, show_progress,
                        lambda layer, shape: np.empty(shape, np.float32))
    try:
        try:
            out = _compute(targets, clips, extractor, batch_size, show_progress,
                           lambda layer, shape: _memmap(os.path.join(tmp, layer + ".npy"), shape))
            for array in out.values():
                array.flush()
            del out
            with open(os.path.join(tmp, "key.json"), "w") as handle:
                json.dump({"key": key, **parts}, handle, indent=2, sort_keys=True)
        except OSError as exc:      # a full disk: the cache is an optimisation, go on without
            get_logger().warning("feature cache %s cannot be written (%s); computing the "
                                 "ground-truth features without it", cache_dir, exc)
            stats["cache"] = "off"
            shutil.rmtree(tmp, ignore_errors=True)
            return _compute(targets, clips, extractor, batch_size, show_progress,
                            lambda layer, shape: np.empty(shape, np.float32))
        if os.path.isdir(folder):           # a broken or concurrent entry: replace it
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            if _read_entry(folder, key, n) is None:     # not another process's complete entry
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    feats = _read_entry(folder, key, n)
    if feats is None:
        raise OSError(f"feature cache {folder}: the entry just written cannot be read back")
    return feats
