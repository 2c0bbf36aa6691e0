"""Summary statistics and the paper's significance tests (section 3.6)."""

import numpy as np
from scipy import stats

__all__ = ["summarize", "ttest_vs_chance", "binomial_vs_baseline", "better"]


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
