import os

import mxnet as mx
import numpy as np
import pytest

from brain2pix_gluon.baselines import (NishimotoBaseline, RidgeEncoder, TopK, retrieve_top_k,
                                       sample_patterns)
from brain2pix_gluon.io.prepared import open_prepared
from brain2pix_gluon.io.reconstructions import read_reconstructions
from brain2pix_gluon.model_zoo import get_model, initialize_paper
from brain2pix_gluon.training.trainer import Trainer

from conftest import tiny_config


class PixelClipFeatures:
    """A cheap stand-in for C3D: the 8x8 mean-pooled centre frame of each clip (192 features)."""

    clip_length = 16
    weights_sha256 = "pixel-pool-8x8"     # what the feature cache keys these "weights" by

    def c3d_features(self, all_frames, positions, clips):
        centre = all_frames[np.asarray(clips)[positions, self.clip_length // 2]]
        n, c, h, w = centre.shape
        pooled = centre.reshape(n, c, 8, h // 8, 8, w // 8).mean(axis=(3, 5))
        return {"c3d_fc6": pooled.reshape(n, -1)}


def test_sample_patterns_average_the_window(prepared_dir):
    path = os.path.join(prepared_dir, "train.h5")
    patterns = sample_patterns(path)
    with open_prepared(path) as f:
        v = np.concatenate([f[f"voxels/{r}"][()] for r in ("V1", "V2", "V3")], axis=1)
        first = f["samples"][7, 4]
    np.testing.assert_allclose(patterns[7], v[first:first + 5].mean(0), atol=1e-5)


def test_ridge_recovers_a_linear_map_and_picks_a_penalty(rng):
    x = rng.normal(size=(400, 20))
    w = rng.normal(size=(20, 6))
    y = x @ w + 3.0 + rng.normal(0, 0.1, (400, 6))
    chunks = lambda a, b: (lambda: ((x[s:s + 50], y[s:s + 50]) for s in range(a, b, 50)))  # noqa: E731
    enc = RidgeEncoder(penalties=(1e-3, 1e6)).fit(chunks(0, 300), chunks(300, 400),
                                                   chunks(0, 400))
    assert enc.penalty == 1e-3 and enc.validation[1e-3] > enc.validation[1e6]
    # the validation score is the mean over voxels of Pearson r over the held-out samples
    coef, intercept = enc._predictor(enc._moments(chunks(0, 300)()),
                                     enc._solve(enc._moments(chunks(0, 300)()), 1e6))
    pred = x[300:] @ coef + intercept
    by_hand = np.mean([np.corrcoef(pred[:, v], y[300:, v])[0, 1] for v in range(6)])
    assert enc.validation[1e6] == pytest.approx(by_hand, rel=1e-5)
    np.testing.assert_allclose(enc.predict(x[:5]), (x @ w + 3.0)[:5], atol=0.1)


def test_top_k_merges_chunks(rng):
    scores = rng.random((4, 30))
    top = TopK(4, 5)
    for s in range(0, 30, 7):
        top.update(scores[:, s:s + 7], s)
    np.testing.assert_array_equal(top.index, np.argsort(-scores, axis=1)[:, :5])


def oracle_patterns(raw_dir, prepared_path):
    """Noise-free voxel patterns of a prepared split's samples (the simulator's ground truth).

    Each sample's pattern is the mean over its window of the noise-free BOLD signal
    (``truth_signals.npz``, columns in mask order V1d, V1v, ..., V3v) of the voxels the prepared
    file holds (same ROIs and order): what a perfect encoding model predicts.
    """
    from brain2pix_gluon.io.names import MASK_KEYS, RAW_PARTS
    from brain2pix_gluon.io.prepared import PreparedSplit
    from brain2pix_gluon.io.raw import load_rf_centres, load_roi_masks

    masks = load_roi_masks(os.path.join(raw_dir, "roimask.mat"))
    cols, rows = load_rf_centres(os.path.join(raw_dir, "col_centers_112px.mat"),
                                 os.path.join(raw_dir, "row_centers_112px.mat"), masks)
    offsets = dict(zip(MASK_KEYS, np.cumsum([0] + [int(masks[k].sum()) for k in MASK_KEYS])))
    split = PreparedSplit(prepared_path)
    columns = np.concatenate([offsets[key] + np.flatnonzero(np.isfinite(cols[key])
                                                            & np.isfinite(rows[key]))
                              for roi in split.rois for key in RAW_PARTS[roi]])
    with np.load(os.path.join(raw_dir, "truth_signals.npz")) as truth:
        signals = {name: truth[name][:, columns] for name in split.run_names}
    samples = split.samples
    out = np.stack([signals[split.run_names[run]][first:first + split.n_trs].mean(axis=0)
                    for run, first in zip(samples.run, samples.first_volume)])
    return out.astype(np.float32)


def test_oracle_encoding_model_finds_the_right_frames(raw_dir, prepared_dir):
    """With the simulator's true responses as predictions, the measured pattern of a training
    sample retrieves that sample (or a neighbour) far above chance."""
    path = os.path.join(prepared_dir, "train.h5")
    oracle = oracle_patterns(raw_dir, path)
    measured = sample_patterns(path)
    index, scores = retrieve_top_k(measured, (oracle[s:s + 30] for s in range(0, len(oracle), 30)), 10)
    hits = np.abs(index[:, 0] - np.arange(len(measured))) <= 2
    chance = 5 / len(measured)
    assert hits.mean() > 0.8 > 10 * chance
    assert np.all(np.diff(scores, axis=1) <= 1e-6)       # best first


def test_baseline1_reconstructs_from_retrieved_training_frames(prepared_dir, tmp_path):
    baseline = NishimotoBaseline(prepared_dir, str(tmp_path), extractor=PixelClipFeatures(), k=3,
                                 chunk=25, show_progress=False)
    baseline.fit(penalties=(1.0, 100.0))
    path, index, _ = baseline.reconstruct(str(tmp_path / "reconstructions.h5"))
    data = read_reconstructions(path)
    with open_prepared(os.path.join(prepared_dir, "train.h5")) as f:
        train_frames = f["frames"][()].astype(np.float32)
        frame_rows = f["samples"][:, 3]
    with open_prepared(os.path.join(prepared_dir, "test.h5")) as f:
        n_test = f["samples"].shape[0]
    assert index.shape == (n_test, 3) and index.max() < len(frame_rows)
    # the retrieval done here by brute force: Pearson r (numpy's corrcoef) between each measured
    # test pattern and every predicted training pattern, the 3 best averaged
    predicted = baseline.encoder.predict(np.asarray(baseline.features())).astype(np.float64)
    measured = sample_patterns(os.path.join(prepared_dir, "test.h5")).astype(np.float64)
    r = np.corrcoef(measured, predicted)[:n_test, n_test:]
    best = np.argsort(-r, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(np.sort(index, axis=1), np.sort(best, axis=1))
    expected = train_frames[frame_rows[best]].mean(axis=1)
    np.testing.assert_allclose(data["reconstructions"], expected, atol=1e-6)
    assert data["attrs"]["variant"] == "nishimoto"
    # features are cached: a second baseline reuses the file
    mtime = os.path.getmtime(tmp_path / "train_c3d_fc6.f32")
    NishimotoBaseline(prepared_dir, str(tmp_path), extractor=PixelClipFeatures(), k=1,
                      show_progress=False).features()
    assert os.path.getmtime(tmp_path / "train_c3d_fc6.f32") == mtime
    # ... but features made with other weights are never reused (same shapes, other values)
    class OtherWeights(PixelClipFeatures):
        weights_sha256 = "other-weights"

        def c3d_features(self, all_frames, positions, clips):
            return {"c3d_fc6": 2.0 * super().c3d_features(all_frames, positions, clips)["c3d_fc6"]}

    first = np.array(baseline.features())
    again = NishimotoBaseline(prepared_dir, str(tmp_path), extractor=OtherWeights(), k=1,
                              show_progress=False).features()
    np.testing.assert_allclose(np.asarray(again), 2.0 * first, rtol=1e-6)
    # with k=1 every reconstruction is exactly one training frame
    one = NishimotoBaseline(prepared_dir, str(tmp_path), extractor=PixelClipFeatures(), k=1,
                            show_progress=False)
    one.fit(penalties=(1.0,))
    _, idx1, _ = one.reconstruct(str(tmp_path / "k1.h5"))
    np.testing.assert_allclose(read_reconstructions(str(tmp_path / "k1.h5"))["reconstructions"],
                               train_frames[idx1[:, 0]], atol=1e-6)


def test_fully_connected_generator_widths():
    g = initialize_paper(get_model("fc_generator"))
    # derived from the widths: 15x96x96 -> 512 -> 256 -> 512 -> 3x96x96; the first and last
    # dense layers carry a bias, the two middle ones are followed by BatchNorm instead (gamma,
    # beta, running mean, running variance: 4 per unit)
    n_in, h1, h2, h3, n_out = 15 * 96 * 96, 512, 256, 512, 3 * 96 * 96
    expected = (n_in * h1 + h1) + (h1 * h2 + 4 * h2) + (h2 * h3 + 4 * h3) + (h3 * n_out + n_out)
    assert sum(p.data().size for p in g.collect_params().values()) == expected
    assert g(mx.nd.zeros((2, 15, 96, 96))).shape == (2, 3, 96, 96)


@pytest.mark.parametrize("variant", ["shen", "fully_connected"])
def test_baselines_2_and_3_train_and_lower_their_pixel_loss(prepared_dir, tmp_path, variant):
    cfg = tiny_config(f"model.variant={variant}", "loss.adversarial_weight=0",
                      "loss.feature_weight=0", "train.lr=0.002", "train.epochs=6",
                      "train.max_steps_per_epoch=4", "train.history_capacity=0")
    trainer = Trainer(cfg, os.path.join(prepared_dir, "train.h5"), str(tmp_path),
                      os.path.join(prepared_dir, "test.h5"), show_progress=False)
    if variant == "shen":
        assert trainer.nets["learned_rf"] is not None and not trainer.include_rf
    batch = [mx.nd.array(np.stack([trainer.train_set[i][k] for i in range(8)]))
             for k in range(len(trainer.train_set[0]))]
    before = float(mx.nd.abs(trainer.predict(batch) - batch[-1]).mean().asscalar())
    trainer.fit()
    after = float(mx.nd.abs(trainer.predict(batch) - batch[-1]).mean().asscalar())
    assert after < 0.9 * before
