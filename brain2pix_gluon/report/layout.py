"""What kind of run a folder holds, and where its parts are (the registry says where each
variant's files live)."""

import dataclasses
import json
import os

from ..errors import Brain2PixError
from ..experiments.registry import EXPERIMENTS, result_path, variant_dir

__all__ = ["NoRunError", "Layout", "find_layout", "VariantFiles", "read_json"]

DEMO_SUMMARY = "demo_summary.json"
SCIENCE_SUMMARY = "science_summary.json"


class NoRunError(Brain2PixError):
    """The folder holds no run of this package (``brain2pix report`` exits 2)."""


@dataclasses.dataclass
class VariantFiles:
    """Where one variant's outputs are (they may be missing or damaged)."""

    experiment: str
    label: str
    slug: str
    kind: str
    folder: str
    recon: str
    results: str
    per_frame: str
    training: str           # training.json: the key and folder of its training run

    @property
    def name(self):
        return f"{self.experiment} / {self.label}"

    @property
    def anchor(self):
        return f"v-{self.experiment}-{self.slug}"


@dataclasses.dataclass
class Layout:
    """A run folder.

    Attributes
    ----------
    kind : {"demo", "science", "results", "experiment"}
        ``brain2pix demo``; ``brain2pix experiment all`` (``make science``); a results root of
        one or more ``brain2pix experiment NAME`` runs; one experiment's folder.
    folder : str
        The folder the report was asked for.
    results_root : str
        The root holding ``<experiment>/<variant>/`` (the demo's ``results/``).
    control_root : str or None
        The time-shuffled control's results root, when the run made one.
    experiments : list of str
        The experiments the page covers (their variants are expected).
    summary : str or None
        The run's summary file (``demo_summary.json``, ``science_summary.json`` or
        ``<experiment>/summary.json``).
    """

    kind: str
    folder: str
    results_root: str
    control_root: object
    experiments: list
    summary: object

    def variants(self):
        """Every variant the page expects, in the registry's order."""
        out = []
        for name in self.experiments:
            for v in EXPERIMENTS[name].variants:
                out.append(VariantFiles(
                    name, v.label, v.slug, v.kind,
                    variant_dir(self.results_root, name, v.label),
                    result_path(self.results_root, name, v.label, "recon"),
                    result_path(self.results_root, name, v.label, "results"),
                    result_path(self.results_root, name, v.label, "per_frame"),
                    os.path.join(variant_dir(self.results_root, name, v.label),
                                 "training.json")))
        return out

    def control(self, variant):
        """The same variant under the control root (None without one)."""
        if not self.control_root:
            return None
        return result_path(self.control_root, variant.experiment, variant.label, "recon")


def _experiments_in(root):
    """Experiments of the registry with at least one variant folder under ``root``."""
    found = []
    for name, experiment in EXPERIMENTS.items():
        if any(os.path.isdir(variant_dir(root, name, v.label)) for v in experiment.variants):
            found.append(name)
    return found


def find_layout(folder):
    """The layout of a run folder.

    Raises
    ------
    NoRunError
        When ``folder`` is not a folder or holds no run (the message says what was expected).
    """
    from ..experiments.demo import DEMO_EXPERIMENT
    from ..experiments.science import CONTROL_DIR

    folder = os.path.abspath(os.fspath(folder))
    expected = (f"expected a folder written by `brain2pix demo` ({DEMO_SUMMARY}), by `brain2pix "
                f"experiment all` ({SCIENCE_SUMMARY}) or by `brain2pix experiment NAME` "
                f"(NAME/<variant>/ folders, NAME one of {sorted(EXPERIMENTS)})")
    if not os.path.isdir(folder):
        raise NoRunError(f"{folder}: no such folder; {expected}")
    control = os.path.join(folder, CONTROL_DIR)
    control = control if os.path.isdir(control) else None
    # a demo: its summary, or (a demo that stopped before writing it) its results folder
    if os.path.exists(os.path.join(folder, DEMO_SUMMARY)) or \
            DEMO_EXPERIMENT in _experiments_in(os.path.join(folder, "results")):
        return Layout("demo", folder, os.path.join(folder, "results"), control,
                      [DEMO_EXPERIMENT], os.path.join(folder, DEMO_SUMMARY))
    if os.path.exists(os.path.join(folder, SCIENCE_SUMMARY)):
        return Layout("science", folder, folder, control, list(EXPERIMENTS),
                      os.path.join(folder, SCIENCE_SUMMARY))
    present = _experiments_in(folder)
    if present:
        return Layout("results", folder, folder, control, present, None)
    name = os.path.basename(folder.rstrip(os.sep))
    parent = os.path.dirname(folder.rstrip(os.sep))
    if name in EXPERIMENTS and name in _experiments_in(parent):
        summary = os.path.join(folder, "summary.json")
        return Layout("experiment", folder, parent, None, [name],
                      summary if os.path.exists(summary) else None)
    raise NoRunError(f"{folder} holds no run of brain2pix; {expected}")


def read_json(path):
    """A JSON file, or the reason it cannot be used.

    Returns
    -------
    (object, None) or (None, str)
        The parsed value, or None and ``"missing"`` / ``"damaged (<why>)"``.
    """
    if not os.path.exists(path):
        return None, "missing"
    try:
        with open(path) as handle:
            return json.load(handle), None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"damaged ({type(exc).__name__}: {str(exc)[:160]})"
