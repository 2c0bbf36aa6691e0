"""Running the paper's seven experiments (docs/method.md section 8) end to end.

For every variant: train (or fit baseline 1), reconstruct the test set, evaluate, then write the
experiment's tables. Every step is skipped when its output is already there and up to date, and
training resumes from its last checkpoint, so re-running a script after a crash continues it.
Results go to ``OUT/<experiment>/<variant>/{recon,eval}``.

**Identical variants are trained once.** FixedRF in Table 1, V1-3 in Table 3, "full" in Table 5
(and, when the settings make it equal, 100 % in Table 7) are the same model on the same data. A
training run lives in ``OUT/trainings/<key>/`` (checkpoints, weights, log, config), where the key
is a hash of the resolved settings that shape the model (:func:`training_key`: everything but
the name, bookkeeping, devices and evaluation) and of the prepared training data; each variant
records its key in ``OUT/<experiment>/<variant>/training.json`` and reconstructs from that run.
A variant whose run another process is training waits for it.
"""

import hashlib
import json
import os
import signal
import time

from .. import __version__
from ..config import apply_overrides, config_to_dict, load_config
from ..configs import config_path
from ..errors import Terminated
from ..provenance import code_version, machine
from .profiles import apply_profile
from ..utils import get_logger, write_json_atomic
from .registry import get_experiment, result_path, select_variants, variant_dir

__all__ = ["run_experiment", "experiment_config", "training_key", "training_dir",
           "TRAININGS"]

# the folder of the shared training runs under a results root
TRAININGS = "trainings"
# settings that never change what is trained: the label, bookkeeping, devices and what happens
# after training (evaluation, pRF estimation, reading vim-2, simulating: the data's identity is
# taken from the prepared file itself)
_NOT_THE_MODEL = {"name", "train.num_workers", "train.grid_samples", "train.save_weights_every",
                  "train.hybridize", "train.kvstore", "train.tensorboard", "evaluation", "prf", "vim2", "simulation"}


def experiment_config(variant_config, profile="paper", overrides=(), weights=None):
    """A variant's config: shipped file, then profile, then ``--weights``, then overrides."""
    config = apply_profile(load_config(config_path(variant_config)), profile)
    extra = []
    if weights:
        extra = [f"loss.feature_weights={weights}", f"evaluation.feature_weights={weights}"]
    return apply_overrides(config, extra + list(overrides))


def training_key(config, train_path):
    """The identity of a training: a hash of the settings that shape the model and of the data.

    Two variants with the same key train the same model on the same data (bit for bit on a
    CPU), so one run serves both.

    Parameters
    ----------
    config : Config
        The variant's resolved configuration.
    train_path : str
        The prepared ``train.h5``: its identity is what ``prepare`` recorded about it (the
        checksum of every raw file it was made from, and the data settings), not its path.

    Returns
    -------
    str
        16 hexadecimal digits.
    """
    from ..io.prepared import PreparedSplit

    settings = config_to_dict(config)
    for item in _NOT_THE_MODEL:
        section, _, key = item.partition(".")
        if key:
            settings.get(section, {}).pop(key, None)
        else:
            settings.pop(section, None)
    split = PreparedSplit(train_path)
    data = {"sources": split.sources, "settings": split.config, "rois": list(split.rois),
            "samples": len(split.samples)}
    blob = json.dumps({"settings": settings, "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def training_dir(out_root, key):
    """``OUT/trainings/<key>``: where the run of a training key lives."""
    return os.path.join(os.fspath(out_root), TRAININGS, key)


def _train_shared(config, data, run_dir, contexts, show_progress, what):
    """Train (or resume, or find finished) the run in ``run_dir``; wait while another process
    trains it. Returns the trainer's status and marks."""
    from ..errors import FolderInUseError
    from ..training.trainer import Trainer

    from ..provenance import run_marks
    from ..training.checkpoint import find_checkpoint, load_checkpoint_state

    log = get_logger()
    if find_checkpoint(run_dir)[0] is not None:
        # a finished run needs no networks built: its checkpoint says it is done (the key
        # guarantees the settings; epochs are part of it)
        _, state, _ = load_checkpoint_state(run_dir)
        if state["epoch"] >= config.train.epochs and state.get("step", 0) == 0:
            weights = {"feature_loss": state.get("provenance", {}).get("feature_weights")}
            return "done before", run_marks(weights, config.train.profile,
                                            config.train.input_control)
    stored = os.path.join(run_dir, "config.yaml")
    if os.path.exists(stored):
        # the run keeps the name of the variant that started it (its outputs carry it)
        import yaml

        with open(stored) as handle:
            theirs = yaml.safe_load(handle) or {}
        if isinstance(theirs, dict) and theirs.get("name"):
            config = apply_overrides(config, [f"name={theirs['name']}"]) \
                if theirs["name"] != config.name else config
    trainer = Trainer(config, os.path.join(data, "train.h5"), run_dir,
                      os.path.join(data, "test.h5"), ctx=contexts, show_progress=show_progress)
    waited = False
    while True:
        try:
            trainer.resume()
            break
        except FolderInUseError as exc:
            if not waited:
                log.info("%s: its training run %s is in use by another process; waiting for it "
                         "(%s)", what, run_dir, exc)
                waited = True
            time.sleep(5.0)
    try:
        if trainer.epoch < config.train.epochs:
            log.info("%s: training epochs %d..%d in %s", what, trainer.epoch + 1,
                     config.train.epochs, run_dir)
            if trainer.fit() == "interrupted":      # exit 143 after SIGTERM, 130 after Ctrl-C
                stop = Terminated if trainer.stop_signal == signal.SIGTERM else KeyboardInterrupt
                raise stop(f"{what} interrupted; run again to resume")
            training = "trained"
        else:
            training = "done before"
    finally:
        trainer.folder_lock.release()       # taken by resume(); fit() gives it back itself
    return training, trainer.marks()


def _evaluations_sharing(out_root, key, vdir):
    """Results folders of the other variants trained by the run of ``key`` (their per-frame
    metrics are those of the same reconstructions: evaluate reuses them)."""
    import glob

    if key is None:
        return []
    found = []
    for pointer in sorted(glob.glob(os.path.join(os.fspath(out_root), "*", "*",
                                                 "training.json"))):
        folder = os.path.dirname(pointer)
        if os.path.abspath(folder) == os.path.abspath(vdir):
            continue
        try:
            with open(pointer) as handle:
                if json.load(handle).get("key") == key:
                    found.append(os.path.join(folder, "eval"))
        except (OSError, ValueError):
            continue
    return found


def _newer(path, than):
    return os.path.exists(path) and (than is None or not os.path.exists(than)
                                     or os.path.getmtime(path) >= os.path.getmtime(than))


def _baseline_files(out_root, exclude_label):
    """Reconstructions of the baselines already made under ``OUT/baselines``."""
    found = {}
    for variant in get_experiment("baselines").variants:
        path = result_path(out_root, "baselines", variant.label, "recon")
        if variant.label != exclude_label and os.path.exists(path):
            found[variant.label] = path
    return found


def _run_variant(name, variant, data, out_root, profile, overrides, weights, contexts,
                 show_progress, evaluate_it=True):
    from ..baselines import run_nishimoto_baseline
    from ..data.dataset import sets_tr, with_recorded_tr
    from ..evaluation.evaluate import evaluate
    from ..training.inference import reconstruct
    from ..training.checkpoint import checkpoint_dir

    ctx = contexts[0]           # training is data parallel over all; inference uses the first
    group = get_experiment(name).table_group
    vdir = variant_dir(out_root, name, variant.label)
    config = experiment_config(variant.config, profile, overrides, weights)
    recon = result_path(out_root, name, variant.label, "recon")
    recon_dir = os.path.dirname(recon)
    status = {"label": variant.label, "dir": vdir}
    if variant.kind == "ridge":
        from ..baselines.ridge import run_ridge_baseline

        if not os.path.exists(recon):
            run_ridge_baseline(data, recon_dir, config, show_progress=show_progress)
            status["ridge"] = "fitted"
        else:
            status["ridge"] = "done before"
        marks = []
    elif variant.kind == "nishimoto":
        if not os.path.exists(recon):
            run_nishimoto_baseline(data, recon_dir, config.evaluation,
                                   show_progress=show_progress, ctx=ctx)
            status["baseline1"] = "fitted"
        else:
            status["baseline1"] = "done before"
        marks = []
    else:
        config = with_recorded_tr(config, os.path.join(data, "train.h5"), sets_tr(overrides))
        key = training_key(config, os.path.join(data, "train.h5"))
        run_dir = training_dir(out_root, key)
        os.makedirs(vdir, exist_ok=True)
        write_json_atomic(os.path.join(vdir, "training.json"),
                          {"key": key, "run": os.path.relpath(run_dir, vdir),
                           "note": "the training run of this variant (shared by every variant "
                                   "with the same settings and data)"})
        status["key"], status["run"] = key, run_dir
        status["training"], marks = _train_shared(config, data, run_dir, contexts, show_progress,
                                                  f"{name} / {variant.label}")
        if not _newer(recon, os.path.join(checkpoint_dir(run_dir), "state.json")):
            reconstruct(run_dir, data, recon_dir, ctx=ctx, show_progress=show_progress)
    status["reconstructions"] = recon
    if not evaluate_it:
        status.update(evaluation="skipped", marks=marks, results=None)
        return status
    baselines = _baseline_files(out_root, variant.label) if group == "baseline" and \
        variant.kind == "train" and not variant.label.startswith("Baseline") else {}
    results = result_path(out_root, name, variant.label, "results")
    current = None
    if _newer(results, recon):
        with open(results) as handle:
            current = json.load(handle)
        known = {k: v.get("source") for k, v in current.get("baselines", {}).items()}
        if known != {k: os.path.abspath(v) for k, v in baselines.items()}:
            current = None
    if current is None:
        current = evaluate(recon, os.path.dirname(results), config.evaluation, baselines, group,
                           variant.label, ctx, show_progress,
                           reuse_from=_evaluations_sharing(out_root, status.get("key"), vdir))
        status["evaluation"] = "evaluated"
    else:
        status["evaluation"] = "done before"
    status["marks"] = current["marks"]
    status["results"] = results
    return status


def run_experiment(name, data, out, profile="paper", overrides=(), weights=None,
                   gpus="", data_home=None, show_progress=True, variants=None, evaluate=True,
                   tables=True):
    """Run one of the paper's experiments end to end (see the module docstring).

    Parameters
    ----------
    name : str
        A key of :data:`~.registry.EXPERIMENTS`.
    data : str or None
        Prepared directory; None: the embedded simulated dataset (simulated and prepared once,
        cached, shared by every script).
    out : str
        Results root.
    profile : str
        A key of :data:`~brain2pix_gluon.config.PROFILES` (``paper``: the published settings).
    overrides : sequence of str
        ``section.key=value`` applied to every variant.
    weights : str, optional
        Sets both ``loss.feature_weights`` and ``evaluation.feature_weights`` (default: the
        configs', ``auto``: pretrained when cached or downloadable, else random and marked).
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
    from ..data.embedded import simulated_dataset
    from .tables import write_tables
    from ..devices import make_contexts

    from ..model_zoo.pretrained import resolve_config_weights

    experiment = get_experiment(name)
    chosen = select_variants(name, variants)
    base = experiment_config("fixed_rf", profile, overrides, weights)
    # 'auto' weights are decided once, here, so every variant uses the same and one line says so
    base, resolved = resolve_config_weights(base)
    overrides = list(overrides) + resolved
    if data is None:
        data = simulated_dataset(base, data_home, show_progress)
    contexts = make_contexts(gpus)
    start = time.time()
    statuses = [_run_variant(name, v, data, out, profile, overrides, weights, contexts,
                             show_progress, evaluate) for v in chosen]
    tables = write_tables(os.path.join(out, name), os.path.join(out, name, "tables")) \
        if evaluate and tables else []
    marks = sorted({m for s in statuses for m in s["marks"]})
    summary = {"experiment": name, "title": experiment.title,
               "table_group": experiment.table_group, "profile": profile,
               "data": os.path.abspath(data), "marks": marks, "variants": statuses,
               "tables": tables, "seconds": round(time.time() - start, 1),
               "package_version": __version__,
               **code_version(), "machine": machine(gpus),
               "config": config_to_dict(base)}
    # jobs running single variants side by side each keep their own summary
    part = "" if len(chosen) == len(experiment.variants) else "_" + "+".join(v.slug for v in chosen)
    write_json_atomic(os.path.join(out, name, f"summary{part}.json"), summary)
    return summary
