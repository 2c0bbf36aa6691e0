"""Two-way identification with p-values, and paired model-vs-control comparisons."""

import itertools

import numpy as np
import pytest
from scipy import stats

from brain2pix_gluon.errors import DataError
from brain2pix_gluon.evaluation.stats import identification_test, paired_comparison


def _accuracy_loop(rec, gt, pairing):
    """Slow reference: successes when rec i is given gt pairing[i] and compared with the others."""
    n = len(rec)
    r = np.array([[np.corrcoef(rec[i], gt[pairing[j]])[0, 1] for j in range(n)] for i in range(n)])
    return sum(r[i, i] > r[i, j] for i in range(n) for j in range(n) if j != i)


def test_identification_p_values_against_slow_references(rng):
    n, d = 12, 30
    gt = rng.normal(size=(n, d))
    rec = 0.4 * gt + rng.normal(size=(n, d))
    res = identification_test(rec, gt, n_permutations=200, seed=5)
    successes = _accuracy_loop(rec, gt, np.arange(n))
    assert res["successes"] == successes and res["n_comparisons"] == n * (n - 1)
    assert res["accuracy"] == pytest.approx(successes / (n * (n - 1)))
    assert res["binomial_p"] == pytest.approx(   # p ~ 1e-28: relative tolerance only
        stats.binomtest(successes, n * (n - 1), 0.5, alternative="greater").pvalue, rel=1e-9, abs=0)
    # the same shuffles (RandomState(seed).permutation, in order), scored by the slow loop
    state = np.random.RandomState(5)
    null = [_accuracy_loop(rec, gt, state.permutation(n)) for _ in range(200)]
    assert res["null_mean"] == pytest.approx(np.mean(null) / (n * (n - 1)))
    assert res["permutation_p"] == pytest.approx((1 + sum(v >= successes for v in null)) / 201)


def test_identification_extremes():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(6, 20))
    perfect = identification_test(feats, feats, n_permutations=50)
    assert perfect["accuracy"] == 1.0
    # exhaustive: of the 720 pairings of 6 frames only the identity scores every comparison,
    # so a shuffle reaches 1.0 with probability 1/720
    scores = [_accuracy_loop(feats, feats, p) for p in itertools.permutations(range(6))]
    assert sum(s == 30 for s in scores) == 1
    assert perfect["permutation_p"] <= 2 / 51
    with pytest.raises(DataError, match="at least 2 frames"):
        identification_test(feats[:1], feats[:1])


def test_paired_comparison_against_scipy(rng):
    model = rng.normal(0.3, 0.1, 40)
    control = rng.normal(0.25, 0.1, 40)
    control[3] = np.nan
    res = paired_comparison(model, control)
    keep = np.isfinite(control)
    wins = int(sum(m > c for m, c in zip(model[keep], control[keep])))
    assert res["wins"] == wins and res["n"] == 39
    assert res["binomial_p"] == pytest.approx(
        stats.binomtest(wins, 39, 0.5, alternative="greater").pvalue, rel=1e-9, abs=0)
    t = stats.ttest_rel(model[keep], control[keep], alternative="greater")
    assert res["t"] == pytest.approx(t.statistic)
    assert res["t_p"] == pytest.approx(t.pvalue, rel=1e-9, abs=0)
    lower = paired_comparison(model, control, higher_is_better=False)
    assert lower["wins"] == 39 - wins
    assert lower["t_p"] == pytest.approx(stats.ttest_rel(model[keep], control[keep],
                                                         alternative="less").pvalue, rel=1e-9, abs=0)
