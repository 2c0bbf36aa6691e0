"""Summary statistics and the paper's significance tests (section 3.6)."""

import numpy as np
from scipy import stats

from ..errors import ConfigError, DataError

__all__ = ["summarize", "ttest_vs_chance", "binomial_vs_baseline", "better", "paired_comparison",
           "identification_test", "binomial_over_metrics", "mcnemar"]


def summarize(values):
    """Mean, SEM and 95 % confidence interval (t distribution) over frames, ignoring NaN."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    n = v.size
    if n == 0:
        return {"mean": float("nan"), "sem": float("nan"), "ci95": [float("nan")] * 2, "n": 0}
    mean = float(v.mean())
    sem = float(v.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    half = float(stats.t.ppf(0.975, n - 1) * sem) if n > 1 else float("nan")
    return {"mean": mean, "sem": sem, "ci95": [mean - half, mean + half], "n": int(n)}


def ttest_vs_chance(values, chance, higher_is_better=True):
    """One-sided paired Student's t-test of per-frame metrics against their chance values.

    Parameters
    ----------
    values, chance : ndarray, shape (n,)
        A model's per-frame metric, and the same metric with non-matching frames.
    higher_is_better : bool
        True for correlations, False for distances.

    Returns
    -------
    dict with ``t``, ``p`` and ``chance_mean``
    """
    v, c = np.asarray(values, float), np.asarray(chance, float)
    keep = np.isfinite(v) & np.isfinite(c)
    result = stats.ttest_rel(v[keep], c[keep], alternative="greater" if higher_is_better else "less")
    return {"t": float(result.statistic), "p": float(result.pvalue), "chance_mean": float(c[keep].mean())}


def better(model, baseline, higher_is_better):
    """Boolean array: where the model's per-frame metric beats the baseline's."""
    model, baseline = np.asarray(model, float), np.asarray(baseline, float)
    return model > baseline if higher_is_better else model < baseline


def binomial_vs_baseline(successes, n):
    """One-sided binomial test (p = 0.5) that the model wins more than half of the comparisons."""
    result = stats.binomtest(int(successes), int(n), 0.5, alternative="greater")
    return {"successes": int(successes), "n": int(n), "rate": successes / n if n else float("nan"),
            "p": float(result.pvalue)}


def paired_comparison(model, other, higher_is_better=True):
    """Per-frame comparison of two models on the same test frames (e.g. model vs control).

    Parameters
    ----------
    model, other : ndarray, shape (n,)
        The same per-frame metric of both (frames where either is NaN are dropped).
    higher_is_better : bool

    Returns
    -------
    dict
        ``model_mean``, ``other_mean``, ``difference`` (model - other), ``wins`` (frames where the
        model is better), ``n``, ``binomial_p`` (one-sided sign test: wins vs 50 %, ties count
        as losses) and ``t``, ``t_p`` (one-sided paired Student's t-test).
    """
    a, b = np.asarray(model, float), np.asarray(other, float)
    if a.shape != b.shape or a.ndim != 1:
        raise DataError(f"paired_comparison: expected two arrays of shape (n,), got {a.shape} "
                         f"and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 2:
        raise DataError(f"paired_comparison: expected at least 2 frames with finite values, got "
                         f"{a.size}")
    wins = int(better(a, b, higher_is_better).sum())
    side = "greater" if higher_is_better else "less"
    t = stats.ttest_rel(a, b, alternative=side)
    return {"model_mean": float(a.mean()), "other_mean": float(b.mean()),
            "difference": float(a.mean() - b.mean()), "wins": wins, "n": int(a.size),
            "binomial_p": float(stats.binomtest(wins, int(a.size), 0.5,
                                                alternative="greater").pvalue),
            "t": float(t.statistic), "t_p": float(t.pvalue)}


def identification_test(rec_features, gt_features, n_permutations=1000, seed=0):
    """Two-way identification accuracy with two p-values against chance (50 %).

    Frame i is compared with every other frame j: a success when its reconstruction correlates
    more with its own ground truth than with frame j's (as
    :func:`~brain2pix_gluon.evaluation.metrics.two_way_identification`).

    * ``binomial_p``: one-sided binomial test of the successes over all n (n - 1) comparisons
      against p = 0.5. The comparisons share frames, so they are not independent and this p is
      optimistic; it is given because the field reports it.
    * ``permutation_p``: the ground truths are shuffled relative to the reconstructions
      ``n_permutations`` times (fixed seed) and the accuracy recomputed; p = (1 + number of
      shuffles at least as accurate) / (1 + n_permutations). Valid whatever the dependence
      between comparisons; use this one for a claim.

    Parameters
    ----------
    rec_features, gt_features : ndarray, shape (n, d)
        Features (e.g. AlexNet pool5) of reconstructions and ground truths, in matching order.
    n_permutations : int
    seed : int

    Returns
    -------
    dict
        ``accuracy``, ``successes``, ``n_comparisons``, ``n_frames``, ``binomial_p``,
        ``permutation_p``, ``n_permutations``, ``null_mean`` (mean accuracy of the shuffles).
    """
    from .metrics import zscore_rows

    rec, gt = zscore_rows(rec_features), zscore_rows(gt_features)
    if rec.shape != gt.shape:
        raise DataError(f"identification_test: expected two arrays of the same shape (n, d), got "
                         f"{rec.shape} and {gt.shape}")
    n = len(rec)
    if n < 2:
        raise DataError(f"identification_test: expected at least 2 frames, got {n}")
    if n_permutations < 1:
        raise ConfigError(f"identification_test: n_permutations expected >= 1, got {n_permutations}")
    corr = rec @ gt.T
    # below[i, k]: how many ground truths of row i correlate less with rec i than gt k does, so a
    # pairing that gives rec i the ground truth k scores below[i, k] successes
    ordered = np.sort(corr, axis=1)
    below = np.stack([np.searchsorted(ordered[i], corr[i], side="left") for i in range(n)])
    rows = np.arange(n)
    successes = int(below[rows, rows].sum())
    comparisons = n * (n - 1)
    rng = np.random.RandomState(seed)
    null = np.array([below[rows, rng.permutation(n)].sum() for _ in range(n_permutations)])
    return {"accuracy": successes / comparisons, "successes": successes,
            "n_comparisons": comparisons, "n_frames": n,
            "binomial_p": float(stats.binomtest(successes, comparisons, 0.5,
                                                alternative="greater").pvalue),
            "permutation_p": float((1 + (null >= successes).sum()) / (1 + n_permutations)),
            "n_permutations": int(n_permutations), "null_mean": float(null.mean() / comparisons)}


def binomial_over_metrics(model, other, higher_is_better, two_sided=False):
    """The paper's binomial test of one model against another over frames x metrics.

    A success is a (frame, metric) where ``model`` is better than ``other`` (higher r, lower
    distance); ties are failures; pairs where either value is NaN are left out.

    Parameters
    ----------
    model, other : dict of str -> ndarray, shape (n,)
        Per-frame values of the same metrics on the same frames.
    higher_is_better : dict of str -> bool
        The metrics to use (its keys) and their direction.
    two_sided : bool
        True asks whether either model wins more than half (for a claim of no difference).

    Returns
    -------
    dict
        ``successes``, ``n``, ``rate`` (successes / n) and ``p`` (one-sided: the model wins
        more than half; or two-sided), ``metrics`` (the keys used).
    """
    wins, n = 0, 0
    for key, higher in higher_is_better.items():
        a, b = np.asarray(model[key], float), np.asarray(other[key], float)
        if a.shape != b.shape:
            raise DataError(f"binomial_over_metrics: {key}: expected the same frames, got shapes "
                            f"{a.shape} and {b.shape}")
        keep = np.isfinite(a) & np.isfinite(b)
        wins += int(better(a[keep], b[keep], higher).sum())
        n += int(keep.sum())
    if n == 0:
        raise DataError("binomial_over_metrics: no (frame, metric) pair with finite values")
    p = stats.binomtest(wins, n, 0.5, alternative="two-sided" if two_sided else "greater").pvalue
    return {"successes": wins, "n": n, "rate": wins / n, "p": float(p),
            "metrics": sorted(higher_is_better)}


def mcnemar(model_correct, other_correct):
    """Exact McNemar test of two classifiers' per-frame hits on the same frames (one-sided: the
    model is right more often).

    Parameters
    ----------
    model_correct, other_correct : ndarray of {0, 1}, shape (n,)

    Returns
    -------
    dict
        ``model_rate``, ``other_rate``, ``model_only`` (frames only the model gets right),
        ``other_only``, ``n`` and ``p`` (binomial test of ``model_only`` among the frames where
        they disagree; 1.0 when they never disagree).
    """
    a = np.asarray(model_correct, float)
    b = np.asarray(other_correct, float)
    if a.shape != b.shape or a.ndim != 1:
        raise DataError(f"mcnemar: expected two arrays of shape (n,), got {a.shape} and "
                        f"{b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep] > 0.5, b[keep] > 0.5
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    p = 1.0 if only_a + only_b == 0 else float(
        stats.binomtest(only_a, only_a + only_b, 0.5, alternative="greater").pvalue)
    return {"model_rate": float(a.mean()) if a.size else float("nan"),
            "other_rate": float(b.mean()) if b.size else float("nan"),
            "model_only": only_a, "other_only": only_b, "n": int(a.size), "p": p}
