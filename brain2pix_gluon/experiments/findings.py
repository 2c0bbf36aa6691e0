"""The paper's findings, each put to a per-frame test on a run of all seven experiments.

Each finding of the paper (section 4) is stated, given a measurable form, split into parts, and
every part is tested twice, on the same test frames of every variant:

* on **the paper's 12 metrics** (AlexNet and C3D pool2 / pool5 / fc6, Pearson r and Euclidean
  distance; with random weights where pretrained ones could not be had, which the verdict says);
* on **two pixel metrics**: PixCorr inside the fisheye frame's valid field and pixel two-way
  identification (the valid field's RGB values, chance 50 %).

The tests (``alpha`` = 0.05, one-sided unless said):

* *A beats B*: the paper's binomial test over frames x metrics, a success where A is better
  than B (higher r or two-way, lower distance), ties counting as failures;
* *A and B differ little*: the same test two-sided, holding when p >= alpha (no detectable
  difference on these frames, which is weaker evidence than an equivalence test);
* *above chance*: per metric, the paired t-test of each frame's value against the value with a
  non-matching frame (the evaluation's chance pairing), every metric p < alpha; for pixel
  two-way identification, the per-frame accuracies against 50 % (one-sample t-test);
* *noise-like outputs*: the share of the outputs' grey-level variance at the finest scales
  (:func:`~brain2pix_gluon.evaluation.metrics.fine_scale_share`) above the ground truth's,
  paired t-test;
* *repeats one pattern*: each output's correlation with the mean of the others
  (:func:`~brain2pix_gluon.evaluation.metrics.repetition`) above the full model's, paired t-test;
* *the more data, the better*: 100 % beats each smaller share, and over frames x metrics the
  least-squares slope of each metric over the five shares points the better way more often than
  not (binomial test).

A part is **not testable here** when its claim rests on a pretrained network the run did not
have: the feature loss's role (the "no feature" ablation) needs the pretrained VGG-19, baseline
1's encoding model the pretrained C3D. Its numbers are still reported. A finding's verdict in a
column is *holds* when every testable part holds (the table then says how many parts were not
testable), *does not hold* when one fails, *not testable here* when no part is testable. The per-frame tests treat consecutive frames as independent,
which they are not: the p-values are optimistic.
"""

import csv

import numpy as np

from ..errors import DataError
from ..evaluation.evaluate import METRICS, chance_partners
from ..evaluation.metrics import (fine_scale_share, masked_pixels, pixcorr, repetition,
                                  two_way_identification)
from ..evaluation.stats import binomial_over_metrics, paired_comparison, summarize
from ..io.reconstructions import read_reconstructions
from ..provenance import is_random
from .registry import RIDGE_LABEL, result_path

__all__ = ["FINDINGS", "VariantScores", "load_scores", "compute_findings", "render_findings",
           "PAPER_METRICS", "PIXEL_METRICS", "VERDICTS"]

ALPHA = 0.05
PAPER_METRICS = {key: key.endswith("_r") for key in METRICS}      # metric -> higher is better
PIXEL_METRICS = {"pixcorr_disc": True, "twoway_pixels": True}
COLUMNS = {"paper": PAPER_METRICS, "pixels": PIXEL_METRICS}
VERDICTS = ("holds", "does not hold", "not testable here")

SYNTHETIC = ("synthetic", "Synthetic")
FIXED = ("fixed_rf", "B2P-FixedRF")
LEARNED = ("learned_rf", "B2P-LearnedRF")
B1, B2, B3 = (("baselines", f"Baseline {k}") for k in (1, 2, 3))
RIDGE = ("baselines", RIDGE_LABEL)
V13, V1, V2, V3 = (("roi", label) for label in ("V1-3", "V1", "V2", "V3"))
FULL, NO_ADV, NO_FEAT = (("ablation", label) for label in ("Full", "No adversarial",
                                                           "No feature"))
SHARES = tuple(("data_size", f"{p}%") for p in (20, 40, 60, 80, 100))

# parts whose claim rests on a pretrained network of a variant: (variant, role) (their numbers
# are still computed): baseline 1 is an encoding model of pretrained C3D features, and the "no
# feature" ablation is about the full model's pretrained VGG-19 loss
_B1_METHOD = (B1, "encoding_features")
_VGG_LOSS = (FULL, "feature_loss")


def _name(variant):
    return variant[1]


class VariantScores:
    """Per-frame numbers of one variant's reconstructions of the test set.

    Attributes
    ----------
    paper, chance : dict of str -> ndarray, shape (n,)
        The 12 metrics and their chance values (from the variant's ``per_frame.csv``).
    pixels : dict of str -> ndarray, shape (n,)
        ``pixcorr_disc`` and ``twoway_pixels``, computed here from the reconstructions.
    pixcorr_chance : ndarray, shape (n,)
        PixCorr in the valid field against the chance partner's ground truth.
    fine_scale, repetition : ndarray, shape (n,)
    sources : dict
        The weight sources the variant's results record.
    """

    def __init__(self, recon, per_frame_rows, mask, sources):
        images = np.asarray(recon["reconstructions"], np.float32)
        targets = np.asarray(recon["targets"], np.float32)
        n = len(images)
        if len(per_frame_rows) != n:
            raise DataError(f"per_frame.csv holds {len(per_frame_rows)} rows for {n} "
                            f"reconstructed frames; evaluate the variant again")
        self.paper = {k: np.array([float(r[k]) for r in per_frame_rows]) for k in METRICS}
        self.chance = {k: np.array([float(r["chance_" + k]) for r in per_frame_rows])
                       for k in METRICS}
        self.pixels = {"pixcorr_disc": pixcorr(images, targets, mask),
                       "twoway_pixels": two_way_identification(masked_pixels(images, mask),
                                                               masked_pixels(targets, mask))}
        self.pixcorr_chance = pixcorr(images, targets[chance_partners(n)], mask)
        self.fine_scale = fine_scale_share(images, mask)
        self.repetition = repetition(images, mask)
        self.sources = sources
        self.n = n

    def column(self, column):
        return self.paper if column == "paper" else self.pixels


def load_scores(out, variants, mask):
    """Read every variant's reconstructions and per-frame metrics.

    Parameters
    ----------
    out : str
        Results root of the run.
    variants : sequence of (experiment, label)
    mask : ndarray of bool, shape (S, S)

    Returns
    -------
    scores : dict of (experiment, label) -> VariantScores
    targets : ndarray, shape (n, 3, S, S)
        The test frames (the same for every variant, which is checked).

    Raises
    ------
    DataError
        When a variant's files are missing, or two variants reconstructed different test frames.
    """
    import json
    import os

    scores, targets, first = {}, None, None
    for experiment, label in variants:
        path = result_path(out, experiment, label, "recon")
        table = result_path(out, experiment, label, "per_frame")
        results = result_path(out, experiment, label, "results")
        for needed in (path, table, results):
            if not os.path.exists(needed):
                raise DataError(f"findings: {needed} is missing; run `brain2pix experiment "
                                f"{experiment}` (or `experiment all`) to make it")
        with open(results) as handle:
            stored = json.load(handle)
        # the frames the evaluation scored (a quick run scores the first few)
        recon = read_reconstructions(path, int(stored["n_frames"]))
        if targets is None:
            targets, first = np.asarray(recon["targets"], np.float32), path
        elif not np.array_equal(targets, recon["targets"]):
            raise DataError(f"findings: {path} and {first} reconstruct different test frames; "
                            f"every variant must be evaluated on the same prepared test set")
        with open(table, newline="") as handle:
            rows = list(csv.DictReader(handle))
        sources = stored.get("weights", {}).get("model", {})
        scores[(experiment, label)] = VariantScores(recon, rows, mask, sources)
    return scores, targets


# ----------------------------------------------------------------------------- the tests

def _beats(a, b, needs=None):
    def test(scores, column):
        result = binomial_over_metrics(scores[a].column(column), scores[b].column(column),
                                       COLUMNS[column])
        return {"test": "binomial over frames x metrics, one-sided", **result,
                "holds": result["p"] < ALPHA,
                "means": {_name(v): _means(scores[v], column) for v in (a, b)}}
    return {"statement": f"{_name(a)} beats {_name(b)}", "variants": (a, b), "test": test,
            "needs": needs}


def _similar(a, b):
    def test(scores, column):
        result = binomial_over_metrics(scores[a].column(column), scores[b].column(column),
                                       COLUMNS[column], two_sided=True)
        return {"test": "binomial over frames x metrics, two-sided (holds when p >= alpha)",
                **result, "holds": result["p"] >= ALPHA,
                "means": {_name(v): _means(scores[v], column) for v in (a, b)}}
    return {"statement": f"{_name(a)} and {_name(b)} differ little", "variants": (a, b),
            "test": test}


def _above_chance(a):
    def test(scores, column):
        s = scores[a]
        if column == "paper":
            per_metric = {}
            for key, higher in PAPER_METRICS.items():
                c = paired_comparison(s.paper[key], s.chance[key], higher)
                per_metric[key] = {"mean": c["model_mean"], "chance": c["other_mean"],
                                   "p": c["t_p"]}
        else:
            c = paired_comparison(s.pixels["pixcorr_disc"], s.pixcorr_chance)
            per_metric = {"pixcorr_disc": {"mean": c["model_mean"], "chance": c["other_mean"],
                                           "p": c["t_p"]}}
            c = paired_comparison(s.pixels["twoway_pixels"],
                                  np.full(s.n, 0.5))
            per_metric["twoway_pixels"] = {"mean": c["model_mean"], "chance": 0.5,
                                           "p": c["t_p"]}
        above = sum(m["p"] < ALPHA for m in per_metric.values())
        return {"test": "paired t-test against chance per metric, one-sided; every metric "
                        "p < alpha", "per_metric": per_metric, "above": above,
                "n_metrics": len(per_metric), "holds": above == len(per_metric)}
    return {"statement": f"{_name(a)} is above chance on every metric", "variants": (a,),
            "test": test}


def _pixel_property(a, b, attribute, what):
    """``a``'s per-frame ``attribute`` above ``b``'s (``b`` None: above the ground truth's,
    stored under the key ``"ground truth"``)."""
    def test(scores, column):
        theirs = scores["ground truth"] if b is None else scores[b]
        c = paired_comparison(getattr(scores[a], attribute), getattr(theirs, attribute))
        return {"test": f"paired t-test of the per-frame {what}, one-sided (the same images in "
                        f"both columns)", "model_mean": c["model_mean"],
                "other_mean": c["other_mean"], "p": c["t_p"], "n": c["n"],
                "holds": c["difference"] > 0 and c["t_p"] < ALPHA}
    other = "the ground truth" if b is None else _name(b)
    return {"statement": f"{_name(a)}'s {what} is above {other}'s",
            "variants": (a,) if b is None else (a, b), "test": test}


def _trend(shares):
    def test(scores, column):
        x = np.array([float(label.rstrip("%")) for _, label in shares])
        x = x - x.mean()
        wins, n = 0, 0
        for key, higher in COLUMNS[column].items():
            y = np.stack([scores[v].column(column)[key] for v in shares])     # (5, n)
            keep = np.all(np.isfinite(y), axis=0)
            slope = (x[:, None] * y[:, keep]).sum(axis=0) / (x * x).sum()
            wins += int(np.sum(slope > 0 if higher else slope < 0))
            n += int(keep.sum())
        from scipy import stats

        p = float(stats.binomtest(wins, n, 0.5, alternative="greater").pvalue)
        return {"test": "per frame and metric, the least-squares slope over the shares; "
                        "binomial test of slopes pointing the better way, one-sided",
                "successes": wins, "n": n, "rate": wins / n, "p": p, "holds": p < ALPHA,
                "means": {_name(v): _means(scores[v], column) for v in shares}}
    return {"statement": "the metrics improve with the share of the training data (trend over "
                         + ", ".join(_name(v) for v in shares) + ")",
            "variants": tuple(shares), "test": test}


def _judgement(a, statement, attribute, what):
    """A part a viewer judges by eye: its numbers are reported, never a verdict."""
    def test(scores, column):
        return {"test": f"a judgement by eye; reported, not tested: per-frame {what}",
                "mean": float(np.nanmean(getattr(scores[a], attribute))),
                "ground_truth_mean": float(np.nanmean(getattr(scores["ground truth"],
                                                              attribute))),
                "holds": None, "judgement": True}
    return {"statement": statement, "variants": (a,), "test": test}


def _means(scores, column):
    return {k: float(np.nanmean(v)) for k, v in scores.column(column).items()}


FINDINGS = (
    {"id": "F1", "claim": "Synthetic input (the target's pixels sampled at the voxels' RF "
                          "centres) reconstructs better than fMRI: experiment 1 is the upper "
                          "bound of the method (section 4.1)",
     "form": "Synthetic beats B2P-FixedRF",
     "parts": [_beats(SYNTHETIC, FIXED)]},
    {"id": "F2", "claim": "B2P-FixedRF and B2P-LearnedRF reconstruct above chance on every "
                          "metric (Tables 1-2, one-sided t-tests)",
     "form": "each of the two above chance on every metric",
     "parts": [_above_chance(FIXED), _above_chance(LEARNED)]},
    {"id": "F3", "claim": "Both Brain2Pix variants beat baselines 1 and 2 (binomial tests, "
                          "Tables 1-2)",
     "form": "FixedRF and LearnedRF each beat Baseline 1 and Baseline 2",
     "parts": [_beats(FIXED, B1, _B1_METHOD), _beats(FIXED, B2), _beats(LEARNED, B1, _B1_METHOD),
               _beats(LEARNED, B2)]},
    {"id": "F4", "claim": "Baseline 2 beats baseline 1, which beats baseline 3; baseline 3's "
                          "outputs are noise-like (section 4.2)",
     "form": "Baseline 2 beats Baseline 1, Baseline 1 beats Baseline 3, and Baseline 3's "
             "outputs are more fine-grained than the frames",
     "parts": [_beats(B2, B1, _B1_METHOD), _beats(B1, B3, _B1_METHOD),
               _pixel_property(B3, None, "fine_scale", "share of variance at the finest "
                                                       "scales")]},
    {"id": "F5", "claim": "FixedRF and LearnedRF differ little (Tables 1-2, section 4.2)",
     "form": "no detectable difference between FixedRF and LearnedRF",
     "parts": [_similar(FIXED, LEARNED)]},
    {"id": "F6", "claim": "V1-3 combined beats each single ROI; V1 alone is the worst and V2 "
                          "and V3 are alike (Tables 3-4, section 4.4)",
     "form": "V1-3 beats V1, V2 and V3; V2 and V3 beat V1; V2 and V3 differ little",
     "parts": [_beats(V13, V1), _beats(V13, V2), _beats(V13, V3), _beats(V2, V1),
               _beats(V3, V1), _similar(V2, V3)]},
    {"id": "F7", "claim": "The full model beats no-adversarial and no-feature; without the "
                          "adversarial loss the model repeats one pattern across frames; "
                          "without the feature loss the outputs look like images but do not "
                          "approximate the target (Tables 5-6, section 4.5)",
     "form": "Full beats No adversarial and No feature; No adversarial's outputs resemble "
             "each other more than Full's",
     "parts": [_beats(FULL, NO_ADV), _beats(FULL, NO_FEAT, _VGG_LOSS),
               _pixel_property(NO_ADV, FULL, "repetition", "similarity of each output to "
                                                           "the others"),
               _judgement(NO_FEAT, "No feature's outputs look like images", "fine_scale",
                          "share of variance at the finest scales")]},
    {"id": "F8", "claim": "More training data is better: 100 % is best, with a trend over "
                          "20-100 % (Tables 7-8, Fig. 6)",
     "form": "100 % beats 20, 40, 60 and 80 %; the metrics improve with the share",
     "parts": [_beats(SHARES[-1], v) for v in SHARES[:-1]] + [_trend(SHARES)]},
)


def variants_of_findings():
    """Every (experiment, label) a finding or a reference row reads."""
    found = []
    for finding in FINDINGS:
        for part in finding["parts"]:
            for v in part["variants"]:
                if v not in found:
                    found.append(v)
    if RIDGE not in found:
        found.append(RIDGE)
    return found


def _untestable(part, scores):
    """Why a part cannot be tested here, or None."""
    from ..provenance import random_mark

    if not part.get("needs"):
        return None
    variant, role = part["needs"]
    if is_random(scores[variant].sources.get(role)):
        return (f"the claim rests on {_name(variant)}'s pretrained network, which this run did "
                f"not have ({random_mark(role)})")
    return None


def compute_findings(scores, ground_truth_scores, marks=()):
    """Test every part of every finding in both columns.

    Parameters
    ----------
    scores : dict of (experiment, label) -> VariantScores
    ground_truth_scores : object
        With ``fine_scale`` (and ``repetition``) of the ground-truth frames, shape (n,).
    marks : sequence of str
        The run's marks (the paper-metric column says whether its weights were random).

    Returns
    -------
    list of dict
        Per finding: ``id``, ``claim``, ``form``, ``verdicts`` (column -> one of
        :data:`VERDICTS`) and ``parts`` (``statement`` and, per column, the test's numbers,
        ``holds`` (True, False, or None when not tested) and ``why_not_testable``).
    """
    table = dict(scores)
    table["ground truth"] = ground_truth_scores
    out = []
    for finding in FINDINGS:
        parts = []
        for part in finding["parts"]:
            row = {"statement": part["statement"],
                   "variants": [f"{e} / {label}" for e, label in part["variants"]]}
            for column in COLUMNS:
                reason = _untestable(part, table)
                result = part["test"](table, column)
                if reason:
                    result = {**result, "holds": None, "why_not_testable": reason}
                row[column] = result
            parts.append(row)
        verdicts, untested = {}, {}
        for column in COLUMNS:
            tested = [p[column]["holds"] for p in parts if p[column]["holds"] is not None]
            verdicts[column] = (VERDICTS[2] if not tested else
                                VERDICTS[0] if all(tested) else VERDICTS[1])
            untested[column] = sum(bool(p[column].get("why_not_testable")) for p in parts)
        out.append({"id": finding["id"], "claim": finding["claim"], "form": finding["form"],
                    "verdicts": verdicts, "parts_not_testable": untested,
                    "n_parts": len(parts), "parts": parts})
    return out


def _p(p):
    return f"p {p:.2g}"


def _cell(result):
    if result.get("judgement"):
        return f"reported: {result['mean']:.3f} (frames {result['ground_truth_mean']:.3f})"
    if result.get("why_not_testable"):
        text = "not testable here"
    else:
        text = "holds" if result["holds"] else "does not hold"
    if "rate" in result:
        return f"{text} ({100 * result['rate']:.0f} % of {result['n']}, {_p(result['p'])})"
    if "above" in result:
        return f"{text} ({result['above']}/{result['n_metrics']} metrics above chance)"
    return f"{text} ({result['model_mean']:.3f} vs {result['other_mean']:.3f}, {_p(result['p'])})"


def render_findings(findings, header_lines=(), reference_rows=(), recognition_lines=()):
    """``findings.md``: the table of findings, reference rows, then every part's test.

    Parameters
    ----------
    findings : list of dict
        :func:`compute_findings`.
    header_lines : sequence of str
        Provenance (marks, profile, frames, machine) written above the table.
    reference_rows : sequence of (str, str, str)
        Rows that are not findings of the paper: (name, what, result).
    recognition_lines : sequence of str
        A Markdown table of what a viewer recognises, when the data have labels.

    Returns
    -------
    str
    """
    lines = ["# The paper's findings, tested on this run", ""]
    lines += list(header_lines) + [""]
    lines += ["| | the paper's finding | measured as | the paper's 12 metrics | pixel metrics |",
              "|---|---|---|---|---|"]
    def verdict(f, column):
        text, untested = f"**{f['verdicts'][column]}**", f["parts_not_testable"][column]
        if untested and f["verdicts"][column] != VERDICTS[2]:
            text += f" ({untested} of {f['n_parts']} parts not testable here)"
        return text

    for f in findings:
        lines.append(f"| **{f['id']}** | {f['claim']} | {f['form']} | {verdict(f, 'paper')} | "
                     f"{verdict(f, 'pixels')} |")
    if reference_rows:
        lines += ["", "Reference rows (not findings of the paper):", "",
                  "| | what | result |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in reference_rows]
    if recognition_lines:
        lines += [""] + list(recognition_lines)
    lines += ["", "## Every part of every finding", ""]
    for f in findings:
        lines.append(f"**{f['id']}** {f['form']}")
        lines.append("")
        lines.append("| part | the paper's 12 metrics | pixel metrics |")
        lines.append("|---|---|---|")
        for p in f["parts"]:
            lines.append(f"| {p['statement']} | {_cell(p['paper'])} | {_cell(p['pixels'])} |")
        reasons = sorted({p[c]["why_not_testable"] for p in f["parts"] for c in COLUMNS
                          if p[c].get("why_not_testable")})
        for reason in reasons:
            lines.append(f"\nNot testable here: {reason}.")
        lines.append("")
    lines.append("Tests: alpha = 0.05; see the module docstring of "
                 "`brain2pix_gluon/experiments/findings.py` and docs/science.md. Consecutive "
                 "frames are alike, so the per-frame tests are optimistic.")
    return "\n".join(lines) + "\n"


def summary_means(scores):
    """Per variant, the mean of each pixel metric and of each paper metric (for the JSON)."""
    return {f"{e} / {label}": {"paper": {k: summarize(v)["mean"] for k, v in s.paper.items()},
                               "pixels": {k: summarize(v)["mean"] for k, v in s.pixels.items()},
                               "fine_scale": summarize(s.fine_scale)["mean"],
                               "repetition": summarize(s.repetition)["mean"]}
            for (e, label), s in scores.items()}
