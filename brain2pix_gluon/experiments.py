"""The paper's seven experiments (SPEC section 8), each a list of variants run end to end.

For every variant: train (or fit baseline 1), reconstruct the test set, evaluate, then write the
experiment's tables. Every step is skipped when its output is already there and up to date, and
training resumes from its last checkpoint, so re-running a script after a crash continues it.
Results go to ``OUT/<experiment>/<variant>/{checkpoints,recon,eval}``.
"""

import argparse
import dataclasses
import json
import os
import re
import sys
import time

from . import __version__
from .config import apply_overrides, config_to_dict, load_config
from .configs import config_path
from .errors import Brain2PixError
from .profiles import apply_profile
from .utils import get_logger, write_json_atomic

__all__ = ["Variant", "EXPERIMENTS", "TABLE_GROUPS", "run_experiment", "experiment_config",
           "select_variants", "main"]


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of an experiment: a label, a shipped config and how it is made."""

    label: str
    config: str = "fixed_rf"
    kind: str = "train"          # train | nishimoto

    @property
    def slug(self):
        return re.sub(r"[^a-z0-9]+", "_", self.label.lower()).strip("_")


EXPERIMENTS = {
    "synthetic": ("Experiment 1: RF-sampled target pixels as input", "synthetic",
                  [Variant("Synthetic", "synthetic")]),
    "fixed_rf": ("Experiment 2: FixedRF", "baseline", [Variant("B2P-FixedRF", "fixed_rf")]),
    "learned_rf": ("Experiment 3: LearnedRF", "baseline", [Variant("B2P-LearnedRF", "learned_rf")]),
    "baselines": ("Experiment 4: baselines", "baseline",
                  [Variant("Baseline 1", kind="nishimoto"), Variant("Baseline 2", "baseline2_shen"),
                   Variant("Baseline 3", "baseline3_fc")]),
    "roi": ("Experiment 5: ROIs", "roi",
            [Variant("V1-3", "fixed_rf"), Variant("V1", "roi_V1"), Variant("V2", "roi_V2"),
             Variant("V3", "roi_V3")]),
    "ablation": ("Experiment 6: ablation", "ablation",
                 [Variant("Full", "fixed_rf"), Variant("No adversarial", "ablation_no_adversarial"),
                  Variant("No feature", "ablation_no_feature")]),
    "data_size": ("Experiment 7: training-set size", "data_size",
                  [Variant(f"{p}%", f"data_size_{p}") for p in (20, 40, 60, 80, 100)]),
}
TABLE_GROUPS = {name: spec[1] for name, spec in EXPERIMENTS.items()}


def experiment_config(variant_config, profile="paper", overrides=(), weights=None):
    """A variant's config: shipped file, then profile, then ``--weights``, then overrides."""
    config = apply_profile(load_config(config_path(variant_config)), profile)
    extra = []
    if weights:
        extra = [f"loss.feature_weights={weights}", f"evaluation.feature_weights={weights}"]
    if profile == "quick":
        extra.append("evaluation.max_frames=48")
    return apply_overrides(config, extra + list(overrides))


def _newer(path, than):
    return os.path.exists(path) and (than is None or not os.path.exists(than)
                                     or os.path.getmtime(path) >= os.path.getmtime(than))


def _baseline_files(out_root, exclude_label):
    """Reconstructions of the baselines already made under ``OUT/baselines``."""
    found = {}
    for variant in EXPERIMENTS["baselines"][2]:
        path = os.path.join(out_root, "baselines", variant.slug, "recon", "reconstructions.h5")
        if variant.label != exclude_label and os.path.exists(path):
            found[variant.label] = path
    return found


def _run_variant(name, variant, data, out_root, profile, overrides, weights, contexts,
                 show_progress, evaluate_it=True):
    from .baselines import run_nishimoto_baseline
    from .evaluation.evaluate import evaluate
    from .reconstruct import reconstruct
    from .training.checkpoint import checkpoint_dir
    from .training.trainer import Trainer

    log = get_logger()
    ctx = contexts[0]           # training is data parallel over all; inference uses the first
    group = TABLE_GROUPS[name]
    vdir = os.path.join(out_root, name, variant.slug)
    config = experiment_config(variant.config, profile, overrides, weights)
    recon_dir = os.path.join(vdir, "recon")
    recon = os.path.join(recon_dir, "reconstructions.h5")
    status = {"label": variant.label, "dir": vdir}
    if variant.kind == "nishimoto":
        if not os.path.exists(recon):
            run_nishimoto_baseline(data, recon_dir, config.evaluation.feature_weights,
                                   show_progress=show_progress, ctx=ctx)
            status["baseline1"] = "fitted"
        else:
            status["baseline1"] = "done before"
        marks = []
    else:
        trainer = Trainer(config, os.path.join(data, "train.h5"), vdir,
                          os.path.join(data, "test.h5"), ctx=contexts, show_progress=show_progress)
        trainer.resume()
        if trainer.epoch < config.train.epochs:
            log.info("%s / %s: training epochs %d..%d", name, variant.label, trainer.epoch + 1,
                     config.train.epochs)
            if trainer.fit() == "interrupted":
                raise KeyboardInterrupt(f"{name} / {variant.label} interrupted; run again to resume")
            status["training"] = "trained"
        else:
            status["training"] = "done before"
        marks = trainer.marks()
        if not _newer(recon, os.path.join(checkpoint_dir(vdir), "state.json")):
            reconstruct(vdir, data, recon_dir, ctx=ctx, show_progress=show_progress)
    status["reconstructions"] = recon
    if not evaluate_it:
        status.update(evaluation="skipped", marks=marks, results=None)
        return status
    baselines = _baseline_files(out_root, variant.label) if group == "baseline" and \
        variant.kind != "nishimoto" and not variant.label.startswith("Baseline") else {}
    results = os.path.join(vdir, "eval", "results.json")
    current = None
    if _newer(results, recon):
        with open(results) as handle:
            current = json.load(handle)
        known = {k: v.get("source") for k, v in current.get("baselines", {}).items()}
        if known != {k: os.path.abspath(v) for k, v in baselines.items()}:
            current = None
    if current is None:
        current = evaluate(recon, os.path.join(vdir, "eval"), config.evaluation, baselines, group,
                           variant.label, ctx, show_progress)
        status["evaluation"] = "evaluated"
    else:
        status["evaluation"] = "done before"
    status["marks"] = current["marks"]
    status["results"] = results
    return status


def select_variants(name, wanted=None):
    """The variants of experiment ``name`` named in ``wanted`` (labels or slugs), in table order.

    Raises
    ------
    Brain2PixError
        When a name is not a variant of the experiment (the message lists them).
    """
    all_variants = EXPERIMENTS[name][2]
    if not wanted:
        return list(all_variants)
    known = {key: v for v in all_variants for key in (v.label, v.slug)}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise Brain2PixError(f"--variant {', '.join(map(repr, unknown))}: not a variant of "
                             f"experiment {name!r}; expected one of "
                             f"{[v.slug for v in all_variants]} (or their labels "
                             f"{[v.label for v in all_variants]})")
    chosen = {known[w].label for w in wanted}
    return [v for v in all_variants if v.label in chosen]


def run_experiment(name, data=None, out="results", profile="paper", overrides=(), weights=None,
                   gpus="", data_home=None, show_progress=True, variants=None, evaluate=True,
                   tables=True):
    """Run one of the paper's experiments end to end (see the module docstring).

    Parameters
    ----------
    name : str
        A key of :data:`EXPERIMENTS`.
    data : str, optional
        Prepared directory; default: the embedded simulated dataset (simulated and prepared
        once, cached, shared by every script).
    out : str
        Results root.
    profile : {"paper", "quick"}
    overrides : sequence of str
        ``section.key=value`` applied to every variant.
    weights : str, optional
        Sets both ``loss.feature_weights`` and ``evaluation.feature_weights``.
    variants : sequence of str, optional
        Variants to run, by label (``"No feature"``) or slug (``no_feature``); default: all. One
        variant per job lets a cluster scheduler run an experiment's trainings side by side.
    evaluate : bool
        False stops after the reconstructions (no feature-network evaluation, no tables).
    tables : bool
        False skips the tables (jobs running variants side by side; ``brain2pix tables`` makes
        them once all have finished).

    Returns
    -------
    dict
        The summary written to ``OUT/<name>/summary.json`` (``summary_<slugs>.json`` when only
        some variants ran).
    """
    from .datasets import simulated_dataset
    from .evaluation.tables import write_tables
    from .training.trainer import make_contexts

    if name not in EXPERIMENTS:
        raise Brain2PixError(f"experiment {name!r} unknown; expected one of {sorted(EXPERIMENTS)}")
    title, group, all_variants = EXPERIMENTS[name]
    chosen = select_variants(name, variants)
    base = experiment_config("fixed_rf", profile, overrides, weights)
    if data is None:
        data = simulated_dataset(base, data_home, show_progress)
    contexts = make_contexts(gpus)
    start = time.time()
    statuses = [_run_variant(name, v, data, out, profile, overrides, weights, contexts,
                             show_progress, evaluate) for v in chosen]
    tables = write_tables(os.path.join(out, name), os.path.join(out, name, "tables")) \
        if evaluate and tables else []
    marks = sorted({m for s in statuses for m in s["marks"]})
    summary = {"experiment": name, "title": title, "table_group": group, "profile": profile,
               "data": os.path.abspath(data), "marks": marks, "variants": statuses,
               "tables": tables, "seconds": round(time.time() - start, 1),
               "package_version": __version__,
               "config": config_to_dict(base)}
    # jobs running single variants side by side each keep their own summary
    part = "" if len(chosen) == len(all_variants) else "_" + "+".join(v.slug for v in chosen)
    write_json_atomic(os.path.join(out, name, f"summary{part}.json"), summary)
    return summary


def main(name, argv=None):
    """Command-line entry shared by ``scripts/run_*.py``."""
    from .cli import _setup_logging

    title = EXPERIMENTS[name][0]
    parser = argparse.ArgumentParser(description=f"{title}. Trains, reconstructs, evaluates and "
                                     f"writes tables under OUT/{name}/.")
    parser.add_argument("--data", help="prepared directory (default: the embedded simulated dataset)")
    parser.add_argument("--out", help="results root (default: results, or results-quick)")
    parser.add_argument("--profile", choices=("paper", "quick"), default="paper")
    parser.add_argument("--weights", help="pretrained | random | path: VGG/AlexNet/C3D weights "
                        "(default: the configs' 'pretrained')")
    parser.add_argument("--gpus", default="", help="e.g. 0, or 0,1 to train data parallel "
                        "(default: CPU)")
    variant_names = ", ".join(v.slug for v in EXPERIMENTS[name][2])
    parser.add_argument("--variant", action="append", metavar="NAME",
                        help=f"run only this variant (repeatable; one of: {variant_names}); "
                        f"tables cover every variant whose results exist")
    parser.add_argument("--no-tables", action="store_true",
                        help="skip the tables (e.g. in array jobs; run `brain2pix tables` after)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value")
    args = parser.parse_args(argv)
    _setup_logging(False)
    out = args.out or ("results" if args.profile == "paper" else "results-quick")
    try:
        summary = run_experiment(name, args.data, out, args.profile, args.overrides, args.weights,
                                 args.gpus, show_progress=not args.no_progress,
                                 variants=args.variant, tables=not args.no_tables)
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc or 'run the script again to resume'}", file=sys.stderr)
        return 130
    except Brain2PixError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    print(f"{summary['title']} ({summary['profile']} profile) -> {os.path.join(out, name)}")
    if summary["marks"]:
        print("  marks: " + "; ".join(summary["marks"]))
    for status in summary["variants"]:
        print(f"  {status['label']:<16} {status['results']}")
    md = [t for t in summary["tables"] if t.endswith("tables.md")]
    if md:
        print(open(md[0]).read())
    return 0
