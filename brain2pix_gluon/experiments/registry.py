"""The one registry of the paper's seven experiments (paper section 3.6; docs/method.md section 8).

Every label, shipped config, table number, figure and result path is defined here and only here:
the experiment runner, ``brain2pix tables`` and the notebooks all read this module, so renaming a
variant cannot silently drop a row from a table or a panel from a figure.
"""

import dataclasses
import os
import re

from ..errors import Brain2PixError
from ..io.reconstructions import RECONSTRUCTION_FILES

__all__ = ["Variant", "Experiment", "EXPERIMENTS", "TABLE_GROUPS", "FIGURES", "get_experiment",
           "table_rows", "select_variants", "variant_dir", "result_path", "figure_inputs",
           "MissingResultsError"]


# the linear floor every deep decoder must clear (baselines/ridge.py); its rows say it is ours
RIDGE_LABEL = "Ridge floor (not in the paper)"


class MissingResultsError(Brain2PixError, FileNotFoundError):
    """Results a table or figure needs have not been produced yet."""


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of an experiment: its label in tables and figures, its shipped config, its kind."""

    label: str
    config: str = "fixed_rf"
    kind: str = "train"          # train | nishimoto | ridge

    @property
    def slug(self):
        """The variant's folder name: the label in lower case, runs of other characters as '_'."""
        return re.sub(r"[^a-z0-9]+", "_", self.label.lower()).strip("_")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One of the seven experiments.

    Attributes
    ----------
    name : str
        Key and folder name (``results/<name>/...``) and ``brain2pix experiment NAME``.
    number : int
        The paper's numbering (section 3.6).
    title : str
    table_group : str
        Which pair of tables its rows go to (``baseline`` -> Tables 1-2, ``roi`` -> 3-4,
        ``ablation`` -> 5-6, ``data_size`` -> 7-8; ``synthetic`` has no table).
    variants : tuple of Variant
    """

    name: str
    number: int
    title: str
    table_group: str
    variants: tuple

    def variant(self, name):
        """A variant by label or slug; the error lists the valid ones."""
        for v in self.variants:
            if name in (v.label, v.slug):
                return v
        raise Brain2PixError(f"experiment {self.name!r} has no variant {name!r}; expected one of "
                             f"{[v.slug for v in self.variants]} (or their labels "
                             f"{[v.label for v in self.variants]})")


EXPERIMENTS = {e.name: e for e in (
    Experiment("synthetic", 1, "Experiment 1: RF-sampled target pixels as input", "synthetic",
               (Variant("Synthetic", "synthetic"),)),
    Experiment("fixed_rf", 2, "Experiment 2: FixedRF", "baseline",
               (Variant("B2P-FixedRF", "fixed_rf"),)),
    Experiment("learned_rf", 3, "Experiment 3: LearnedRF", "baseline",
               (Variant("B2P-LearnedRF", "learned_rf"),)),
    Experiment("baselines", 4, "Experiment 4: baselines", "baseline",
               (Variant("Baseline 1", kind="nishimoto"), Variant("Baseline 2", "baseline2_shen"),
                Variant("Baseline 3", "baseline3_fc"), Variant(RIDGE_LABEL, kind="ridge"))),
    Experiment("roi", 5, "Experiment 5: ROIs", "roi",
               (Variant("V1-3", "fixed_rf"), Variant("V1", "roi_V1"), Variant("V2", "roi_V2"),
                Variant("V3", "roi_V3"))),
    Experiment("ablation", 6, "Experiment 6: ablation", "ablation",
               (Variant("Full", "fixed_rf"), Variant("No adversarial", "ablation_no_adversarial"),
                Variant("No feature", "ablation_no_feature"))),
    Experiment("data_size", 7, "Experiment 7: training-set size", "data_size",
               tuple(Variant(f"{p}%", f"data_size_{p}") for p in (20, 40, 60, 80, 100))),
)}

# table group -> (number of its correlation table; the distance table is the next number, title)
TABLE_GROUPS = {
    "baseline": (1, "Baseline experiment"),
    "roi": (3, "ROI experiment"),
    "ablation": (5, "Ablation experiment"),
    "data_size": (7, "Data-size experiment"),
}

# figure -> list of (experiment, variant label) panels, in the paper's order
FIGURES = {
    "fig3": [("fixed_rf", "B2P-FixedRF")],
    "fig4": [("fixed_rf", "B2P-FixedRF"), ("learned_rf", "B2P-LearnedRF"),
             ("baselines", "Baseline 1"), ("baselines", "Baseline 2"),
             ("baselines", RIDGE_LABEL)],
    "fig5": [("roi", "V1-3"), ("roi", "V1"), ("roi", "V2"), ("roi", "V3")],
    "fig6": [("data_size", f"{p}%") for p in (20, 40, 60, 80, 100)],
}


def get_experiment(name):
    """The experiment called ``name``; the error lists every valid name."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise Brain2PixError(f"experiment {name!r} unknown; expected one of "
                             f"{sorted(EXPERIMENTS)}") from None


def table_rows(group):
    """Labels of a table group's rows, in the paper's order."""
    return [v.label for e in EXPERIMENTS.values() if e.table_group == group for v in e.variants]


def select_variants(name, wanted=None):
    """The variants of experiment ``name`` named in ``wanted`` (labels or slugs), in table order.

    Raises
    ------
    Brain2PixError
        When a name is not a variant of the experiment (the message lists them).
    """
    variants = get_experiment(name).variants
    if not wanted:
        return list(variants)
    known = {key: v for v in variants for key in (v.label, v.slug)}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise Brain2PixError(f"--variant {', '.join(map(repr, unknown))}: not a variant of "
                             f"experiment {name!r}; expected one of {[v.slug for v in variants]} "
                             f"(or their labels {[v.label for v in variants]})")
    chosen = {known[w].label for w in wanted}
    return [v for v in variants if v.label in chosen]


def variant_dir(results_root, experiment, variant):
    """``<results_root>/<experiment>/<variant slug>``."""
    exp = get_experiment(experiment)
    return os.path.join(os.fspath(results_root), exp.name, exp.variant(variant).slug)


_FILES = {"recon": ("recon", RECONSTRUCTION_FILES["h5"]), "results": ("eval", "results.json"),
          "per_frame": ("eval", "per_frame.csv"), "run": ("run.json",)}


def result_path(results_root, experiment, variant, what="recon"):
    """Where a variant's output lives.

    Parameters
    ----------
    what : {"recon", "results", "per_frame", "run"}
    """
    if what not in _FILES:
        raise Brain2PixError(f"result_path: what={what!r}; expected one of {sorted(_FILES)}")
    return os.path.join(variant_dir(results_root, experiment, variant), *_FILES[what])


def figure_inputs(results_root, figure, what="recon", allow_missing=()):
    """Label -> existing result file of every panel of a paper figure.

    Raises
    ------
    MissingResultsError
        When a panel's file is missing (unless its label is in ``allow_missing``); the message
        names the file and the script that makes it.
    """
    if figure not in FIGURES:
        raise Brain2PixError(f"figure {figure!r} unknown; expected one of {sorted(FIGURES)}")
    found, missing = {}, []
    for experiment, label in FIGURES[figure]:
        path = result_path(results_root, experiment, label, what)
        if os.path.exists(path):
            found[label] = path
        elif label not in allow_missing:
            missing.append(f"{label}: {path} (made by `brain2pix experiment {experiment}`, "
                           f"i.e. `python scripts/run_{experiment}.py`)")
    if missing:
        raise MissingResultsError(f"{figure} needs results that are missing under "
                                  f"{results_root!s}:\n  " + "\n  ".join(missing))
    return found
