"""Baseline 1, Nishimoto-like: C3D encoding model + retrieval of training frames (paper section 3.5, Fig. 2).

1. C3D fc6 features (4096) of every training sample, from its 16-frame clip (the evaluation's clip
   rule), streamed in batches into a float32 file.
2. An encoding model: closed-form ridge regression from standardised features to each voxel's
   response, the response being the mean of the sample's 5-TR window of z-scored voxels (all ROIs).
   The penalty is chosen from a grid on held-out training runs (the last run), by the mean
   correlation between predicted and measured voxel responses; then refit on all training runs.
   Only X'X (4096 x 4096) and X'Y (4096 x voxels) are accumulated, chunk by chunk.
3. Predicted voxel patterns of all training stimuli, made chunk by chunk and never stored whole.
4. For every test sample, Pearson correlation between its measured pattern and each predicted
   training pattern (over voxels); a running top-k keeps the k = 10 best.
5. Reconstruction = mean of those 10 training frames.

Memory at the paper's scale (119,000 training samples, V voxels, d = 4096 features): X'X 134 MB,
X'Y 32.8 kB x V, ridge weights 16.4 kB x V (float32), one chunk of predictions
chunk x V x 4 B, and the test patterns; the features themselves stay on disk (1.95 GB), and training frames are read from the
prepared file only when needed.
For V = 8,000 and chunks of 4,096 samples that is about 0.7 GB.
"""

import os

import mxnet as mx
import numpy as np

from ..data.dataset import RFSImageDataset
from ..errors import DataError
from ..evaluation.feature_cache import weights_sha256
from ..evaluation.features import clip_indices, feature_extractor
from ..evaluation.metrics import pearson_rows, zscore_rows
from ..io.prepared import PreparedSplit
from ..io.reconstructions import RECONSTRUCTION_FILES, write_reconstructions
from ..utils import array_sha256, get_logger, progress, replacing, reserve_space, write_json_atomic
from .penalty import check_penalties, choose_penalty

__all__ = ["sample_patterns", "RidgeEncoder", "TopK", "retrieve_top_k", "NishimotoBaseline",
           "run_nishimoto_baseline"]


def sample_patterns(path, rois=None):
    """Each sample's voxel pattern: the mean over its n_trs-volume window, all ROIs concatenated.

    Returns
    -------
    ndarray, shape (n_samples, n_voxels_total), float32
    """
    ds = RFSImageDataset(path, rois, mode="voxels", in_memory=False)
    with PreparedSplit(path).arrays(ds.rois) as arrays:
        volumes = np.concatenate([arrays.voxels(r) for r in ds.rois], axis=1)
    cumulative = np.cumsum(np.vstack([np.zeros((1, volumes.shape[1])), volumes]), axis=0)
    starts = ds.samples.volume_row
    return ((cumulative[starts + ds.n_trs] - cumulative[starts]) / ds.n_trs).astype(np.float32)


# penalties of the encoding model, tried on the last training run
DEFAULT_PENALTIES = (1e0, 1e1, 1e2, 1e3, 1e4, 1e5)


class RidgeEncoder:
    """Closed-form ridge regression fitted from streamed (features, responses) chunks.

    Parameters
    ----------
    penalties : sequence of float
        Penalties tried on the held-out samples (:func:`~.penalty.choose_penalty`).

    Attributes
    ----------
    penalty : float
        The chosen one.
    validation : dict of float -> float
        Mean validation Pearson r (over voxels) of every penalty tried.
    """

    def __init__(self, penalties=DEFAULT_PENALTIES):
        self.penalties = check_penalties(penalties)
        self.penalty = None
        self.weights = None
        self.validation = {}

    @staticmethod
    def _moments(chunks):
        n, sx, sy, sxx, sxy = 0, None, None, None, None
        for x, y in chunks:
            x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
            if sx is None:
                sx, sy = np.zeros(x.shape[1]), np.zeros(y.shape[1])
                sxx, sxy = np.zeros((x.shape[1],) * 2), np.zeros((x.shape[1], y.shape[1]))
            n += len(x)
            sx += x.sum(0)
            sy += y.sum(0)
            sxx += x.T @ x
            sxy += x.T @ y
        if n < 2:
            raise DataError(f"ridge regression needs at least 2 training samples, got {n}")
        mx_, my_ = sx / n, sy / n
        cxx = sxx - n * np.outer(mx_, mx_)
        cxy = sxy - n * np.outer(mx_, my_)
        scale = np.sqrt(np.maximum(np.diag(cxx) / n, 1e-12))   # standardise the features
        cxx = cxx / np.outer(scale, scale)
        cxy = cxy / scale[:, None]
        return {"n": n, "mean_x": mx_, "mean_y": my_, "scale": scale, "cxx": cxx, "cxy": cxy}

    @staticmethod
    def _solve(m, penalty):
        evals, evecs = np.linalg.eigh(m["cxx"])
        return evecs @ ((evecs.T @ m["cxy"]) / (evals + penalty)[:, None])

    def _predictor(self, m, w):
        coef = (w / m["scale"][:, None]).astype(np.float32)
        intercept = (m["mean_y"] - (m["mean_x"] / m["scale"]) @ w).astype(np.float32)
        return coef, intercept

    def fit(self, train_chunks, val_chunks=None, all_chunks=None):
        """Fit; choose the penalty on ``val_chunks`` when given, then refit on ``all_chunks``.

        Each argument is a callable returning a fresh iterator of (features, responses) chunks:
        features (b, n_features) and responses (b, n_voxels).
        """
        if val_chunks is not None and len(self.penalties) > 1:
            m = self._moments(train_chunks())
            evals, evecs = np.linalg.eigh(m["cxx"])
            proj = evecs.T @ m["cxy"]

            def validation_r(penalty):
                coef, intercept = self._predictor(m, evecs @ (proj / (evals + penalty)[:, None]))
                preds, truth = [], []
                for x, y in val_chunks():
                    preds.append(np.asarray(x, np.float32) @ coef + intercept)
                    truth.append(np.asarray(y, np.float32))
                # per voxel, over the held-out samples
                return pearson_rows(np.concatenate(preds).T, np.concatenate(truth).T)

            self.penalty, self.validation = choose_penalty(self.penalties, validation_r)
        else:
            self.penalty = self.penalties[0]
        m = self._moments((all_chunks or train_chunks)())
        self.weights = self._predictor(m, self._solve(m, self.penalty))
        return self

    def predict(self, features):
        """Predicted responses, shape (n, n_voxels), float32."""
        coef, intercept = self.weights
        return np.asarray(features, np.float32) @ coef + intercept


class TopK:
    """Running top-k (largest scores) per query row."""

    def __init__(self, n_queries, k):
        self.k = k
        self.scores = np.full((n_queries, 0), -np.inf, np.float32)
        self.index = np.zeros((n_queries, 0), np.int64)

    def update(self, scores, offset):
        """Merge a (n_queries, chunk) score block whose columns start at candidate ``offset``."""
        cand = np.arange(offset, offset + scores.shape[1])[None, :].repeat(len(scores), 0)
        all_scores = np.concatenate([self.scores, scores.astype(np.float32)], axis=1)
        all_index = np.concatenate([self.index, cand], axis=1)
        k = min(self.k, all_scores.shape[1])
        part = np.argpartition(-all_scores, k - 1, axis=1)[:, :k]
        rows = np.arange(len(all_scores))[:, None]
        order = np.argsort(-all_scores[rows, part], axis=1)
        self.index = all_index[rows, part][rows, order]
        self.scores = all_scores[rows, part][rows, order]


def retrieve_top_k(queries, candidate_chunks, k=10):
    """Indices of the k candidates best correlated (over voxels) with each query.

    Parameters
    ----------
    queries : ndarray, shape (n_queries, n_voxels)
    candidate_chunks : iterable of ndarray, shape (chunk, n_voxels)
        Candidate patterns in order (index = position in the concatenation).

    Returns
    -------
    index : ndarray of int64, shape (n_queries, k)
    scores : ndarray, shape (n_queries, k)
        Pearson correlations, best first.
    """
    q = zscore_rows(queries, np.float32)
    top = TopK(len(q), k)
    offset = 0
    for chunk in candidate_chunks:
        c = zscore_rows(chunk, np.float32)
        top.update(q @ c.T, offset)
        offset += len(c)
    if offset < k:
        raise DataError(f"retrieval: expected at least k={k} candidates, got {offset}")
    return top.index, top.scores


class NishimotoBaseline:
    """Fit and apply baseline 1 on a prepared dataset.

    Parameters
    ----------
    prepared_dir : str
    work_dir : str
        Receives the feature file ``train_c3d_fc6.f32`` and ``encoder.npz``.
    extractor : FeatureExtractor, optional
        Default: the evaluation's extractor built from ``settings``.
    settings : EvalConfig, optional
        The evaluation settings (C3D weights, input size, clip length, normalisation).
    k : int
        Training frames averaged per reconstruction (10).
    chunk : int
        Samples per chunk in every streamed step.
    """

    def __init__(self, prepared_dir, work_dir, extractor=None, settings=None, k=10,
                 chunk=1024, batch_size=16, rois=None, show_progress=True, ctx=None):
        self.train_path = os.path.join(prepared_dir, "train.h5")
        self.test_path = os.path.join(prepared_dir, "test.h5")
        self.work_dir = work_dir
        self.k, self.chunk, self.batch_size = k, chunk, batch_size
        self.rois = rois
        self.show_progress = show_progress
        self.ctx = ctx or mx.cpu()
        self.extractor = extractor or feature_extractor(settings, self.ctx)
        self.sources = getattr(self.extractor, "sources", {"c3d": "injected"})

    def _test_frames(self):
        split = PreparedSplit(self.test_path)
        with split.arrays(()) as arrays:
            frames = arrays.frames()[split.samples.frame_row].astype(np.float32)
        return split.samples, frames, split.run_names

    @staticmethod
    def _train_frames(arrays, samples, positions):
        """Frames (float32) of training sample positions, read from HDF5 in increasing order."""
        rows = samples.frame_row[positions]
        unique, inverse = np.unique(rows, return_inverse=True)
        return arrays.frames(unique).astype(np.float32)[inverse]

    def _feature_key(self, split):
        """What the cached training features depend on: the C3D weights, the prepared data, the
        clip rule and the input size. None (never reuse) for an extractor whose weights cannot be
        hashed."""
        import hashlib
        import json

        weights = weights_sha256(self.extractor)
        if weights is None:
            return None
        identity = {"weights": weights, "samples": array_sha256(split.samples.array),
                    "data": split.identity(),
                    "clip_length": self.extractor.clip_length,
                    "c3d_size": getattr(self.extractor, "c3d_size", None),
                    "normalize": bool(getattr(self.extractor, "normalize", True)),
                    "layer": "c3d_fc6"}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def features(self):
        """C3D fc6 of every training sample, cached on disk; returns a read-only memmap.

        Frames are read chunk by chunk (with the clip margin), so memory does not grow with the
        training set. The cache is reused only when it was made with the same C3D weights (a hash
        of their values), the same prepared data (its sources, config and samples) and the same
        clip rule; otherwise it is recomputed.
        """
        import json

        path = os.path.join(self.work_dir, "train_c3d_fc6.f32")
        meta = path + ".json"
        split = PreparedSplit(self.train_path)
        samples = split.samples
        n = len(samples)
        with split.arrays(()) as arrays:
            key = self._feature_key(split)
            if key is not None and os.path.exists(path) and os.path.exists(meta):
                with open(meta) as stream:
                    stored = json.load(stream)
                shape = tuple(stored.get("shape", ()))
                if (stored.get("key") == key and len(shape) == 2 and shape[0] == n
                        and os.path.getsize(path) == n * shape[1] * 4):
                    return np.memmap(path, np.float32, "r", shape=shape)
                get_logger().info("baseline 1: %s was computed with other C3D weights, data or "
                                  "clip rule; recomputing it", path)
            os.makedirs(self.work_dir, exist_ok=True)
            out = None
            clips = clip_indices(samples.run, self.extractor.clip_length)
            starts = range(0, n, self.batch_size)
            with replacing(path) as tmp:
                for s in progress(starts, desc="baseline 1: C3D features",
                                  enabled=self.show_progress, unit="batch"):
                    pos = np.arange(s, min(s + self.batch_size, n))
                    lo, hi = clips[pos].min(), clips[pos].max() + 1
                    block = self._train_frames(arrays, samples, np.arange(lo, hi))
                    feats = self.extractor.c3d_features(block, pos, clips - lo)["c3d_fc6"]
                    if out is None:
                        out = np.memmap(tmp, np.float32, "w+", shape=(n, feats.shape[1]))
                        reserve_space(tmp)      # a full disk: ENOSPC here, not SIGBUS later
                    out[pos] = feats
                shape = out.shape
                out.flush()
                del out
        write_json_atomic(meta, {"shape": list(shape), "layer": "c3d_fc6", "key": key,
                                 "encoding_features": self.sources.get("c3d")})
        return np.memmap(path, np.float32, "r", shape=shape)

    def fit(self, penalties=DEFAULT_PENALTIES):
        """Encoding model on the training runs (penalty chosen on the last run)."""
        feats = self.features()
        patterns = sample_patterns(self.train_path, self.rois)
        runs = PreparedSplit(self.train_path).samples.run
        held = runs == runs.max()
        if held.all() or not held.any():
            held = np.zeros(len(runs), bool)
            held[int(0.8 * len(runs)):] = True          # one run only: hold out its last 20 %

        def chunks(mask):
            idx = np.flatnonzero(mask)
            return lambda: ((feats[idx[s:s + self.chunk]], patterns[idx[s:s + self.chunk]])
                            for s in range(0, len(idx), self.chunk))

        self.encoder = RidgeEncoder(penalties).fit(chunks(~held), chunks(held),
                                                chunks(np.ones(len(runs), bool)))
        os.makedirs(self.work_dir, exist_ok=True)
        write_json_atomic(os.path.join(self.work_dir, "encoder.json"),
                          {"penalty": self.encoder.penalty,
                           "validation_mean_r": self.encoder.validation,
                           "n_train": int(len(runs)), "n_voxels": int(patterns.shape[1]),
                           "encoding_features": self.sources.get("c3d")})
        return self

    def reconstruct(self, out_path, label="Baseline 1"):
        """Retrieve and average the k best training frames for every test sample."""
        feats = self.features()
        queries = sample_patterns(self.test_path, self.rois)
        predicted = (self.encoder.predict(feats[s:s + self.chunk])
                     for s in range(0, len(feats), self.chunk))
        index, scores = retrieve_top_k(queries, predicted, self.k)
        split = PreparedSplit(self.train_path)
        with split.arrays(()) as arrays:
            retrieved = self._train_frames(arrays, split.samples, index.reshape(-1))
        recon = retrieved.reshape(index.shape + retrieved.shape[1:]).mean(axis=1)
        test_samples, test_frames, names = self._test_frames()
        attrs = {"model": label, "variant": "nishimoto",
                 "weights": {"encoding_features": self.sources.get("c3d")},
                 "k": self.k, "penalty": self.encoder.penalty, "source": os.path.abspath(self.test_path),
                 "retrieved": index.tolist()[:50]}
        write_reconstructions(out_path, recon, test_frames, test_samples.array, names, attrs)
        np.save(os.path.join(os.path.dirname(out_path), "retrieved_index.npy"), index)
        get_logger().info("baseline 1: %d test reconstructions (mean of %d retrieved frames) -> %s",
                          len(recon), self.k, out_path)
        return out_path, index, scores


def run_nishimoto_baseline(prepared_dir, out_dir, settings=None, k=10, show_progress=True,
                           extractor=None, ctx=None):
    """Fit baseline 1 and write ``out_dir/reconstructions.h5``.

    ``settings`` (EvalConfig) builds the C3D extractor, as the evaluation does."""
    baseline = NishimotoBaseline(prepared_dir, out_dir, extractor, settings, k,
                                 show_progress=show_progress, ctx=ctx)
    baseline.fit()
    path, _, _ = baseline.reconstruct(os.path.join(out_dir, RECONSTRUCTION_FILES["h5"]))
    return path
