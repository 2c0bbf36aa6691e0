"""The ridge floor: against scikit-learn's Ridge, and end to end through `brain2pix baseline ridge`."""

import os

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from brain2pix_gluon.baselines.ridge import RidgeDecoder, pooled_inputs
from brain2pix_gluon.cli import main
from brain2pix_gluon.data.dataset import RFSImageDataset
from brain2pix_gluon.errors import ConfigError
from brain2pix_gluon.io.reconstructions import read_reconstructions


def _problem(rng, n=80, f=30, size=4):
    x = rng.normal(size=(n, f)) * rng.uniform(0.5, 3.0, f) + rng.normal(size=f)
    w = rng.normal(size=(f, 3 * size * size)) * 0.05
    y = 0.5 + x @ w * 0.1 + rng.normal(0, 0.05, (n, 3 * size * size))
    return x, np.clip(y, 0, 1).reshape(n, 3, size, size).astype(np.float32)


def test_predictions_equal_scikit_learn_ridge_on_standardised_inputs(rng):
    x, y = _problem(rng)
    lam = 3.0
    dec = RidgeDecoder(penalties=(lam,)).fit(x, y)
    xs = (x - x.mean(0)) / (x.std(0) + 1e-8)
    ref = Ridge(alpha=lam * x.shape[1], fit_intercept=True).fit(xs, y.reshape(len(y), -1))
    x_new = rng.normal(size=(7, x.shape[1])) + x.mean(0)
    expected = np.clip(ref.predict((x_new - x.mean(0)) / (x.std(0) + 1e-8)), 0, 1)
    np.testing.assert_allclose(dec.predict(x_new).reshape(7, -1), expected, atol=2e-4)


def test_penalty_is_chosen_on_the_trailing_block_by_correlation(rng):
    x, y = _problem(rng, n=100)
    lambdas = (0.01, 1.0, 100.0)
    dec = RidgeDecoder(penalties=lambdas, validation_fraction=0.2).fit(x, y)
    # by hand: fit on the first 80 samples (standardised with all 100), score the last 20
    xs = (x - x.mean(0)) / (x.std(0) + 1e-8)
    flat = y.reshape(100, -1)[:, ::7]
    scores = {}
    for lam in lambdas:
        ref = Ridge(alpha=lam * x.shape[1]).fit(xs[:80], flat[:80])
        pred = ref.predict(xs[80:])
        scores[lam] = np.mean([np.corrcoef(p, t)[0, 1] for p, t in zip(pred, flat[80:])])
    assert dec.validation == pytest.approx(scores, abs=1e-4)
    assert dec.penalty == max(scores, key=scores.get)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="penalties"):
        RidgeDecoder(penalties=(1.0, -2.0))
    with pytest.raises(ConfigError, match="validation_fraction"):
        RidgeDecoder(validation_fraction=1.0)


def test_pooling_averages_blocks(prepared_dir):
    data = RFSImageDataset(os.path.join(prepared_dir, "test.h5"), None, 1.0, "rf")
    x, y = pooled_inputs(data, pool=8)
    rf, target = data[3]
    f = rf.shape[-1] // 8
    # block (row 2, col 5) of channel 7, averaged by hand
    block = rf[7, 2 * f:3 * f, 5 * f:6 * f].mean()
    assert x[3].reshape(rf.shape[0], 8, 8)[7, 2, 5] == pytest.approx(block, rel=1e-5)
    np.testing.assert_array_equal(y[3], target)
    with pytest.raises(ConfigError, match="pool"):
        pooled_inputs(data, pool=7)


def test_cli_writes_marked_reconstructions_of_the_test_split(prepared_dir, tmp_path):
    out = tmp_path / "ridge"
    main(["baseline", "ridge", "--data", prepared_dir, "--out", str(out), "--pool", "8",
          "--no-progress"])
    recon = read_reconstructions(str(out / "reconstructions.h5"))
    test = RFSImageDataset(os.path.join(prepared_dir, "test.h5"), None, 1.0, "rf")
    assert recon["reconstructions"].shape == (len(test), 3, test.size, test.size)
    np.testing.assert_array_equal(recon["targets"][5], test[5][1])
    assert recon["attrs"]["model"] == "ridge"
    assert recon["attrs"]["profile"] == "not in the paper"
    # refit by hand on the same pooled inputs: the file holds exactly its predictions
    train = RFSImageDataset(os.path.join(prepared_dir, "train.h5"), None, 1.0, "rf")
    xtr, ytr = pooled_inputs(train, 8)
    xte, _ = pooled_inputs(test, 8)
    lam = recon["attrs"]["config"]["lambda"]
    xs_mean, xs_sd = xtr.mean(0), xtr.std(0) + 1e-8
    ref = Ridge(alpha=lam * xtr.shape[1]).fit((xtr - xs_mean) / xs_sd, ytr.reshape(len(ytr), -1))
    expected = np.clip(ref.predict((xte - xs_mean) / xs_sd), 0, 1)
    np.testing.assert_allclose(recon["reconstructions"].reshape(len(xte), -1), expected,
                               atol=5e-4)
