"""``brain2pix experiment all`` (``make science``): the paper's seven experiments in one run, and
what they say about each of its findings.

The run:

1. prepares the data once (the embedded simulated dataset unless ``--data`` is given);
2. trains every distinct model once (variants with equal settings and data share a training run,
   :func:`~.runner.training_key`), fits baseline 1 and the ridge floor, and trains FixedRF once
   more on time-shuffled fMRI (the control of the learning check), ``jobs`` at a time in worker
   processes, the longest first;
3. reconstructs and evaluates every variant (the baselines first, which the others are tested
   against);
4. writes Tables 1-8, Figs. 3-6, the learning check of FixedRF against its control, what a
   viewer recognises (on the embedded world) and the findings table
   (:mod:`brain2pix_gluon.evaluation.findings`): ``findings.json`` and ``findings.md``.

Every step is skipped when its output is there, and a training resumes from its last
checkpoint; workers die with the process that started them. A run killed at any moment
(``kill -9`` included) and started again ends with the same numbers as an uninterrupted one. One
line per unit says what started, what finished and the estimated time left.
"""

import concurrent.futures
import json
import multiprocessing
import os
import threading
import time

from .. import __version__
from ..provenance import code_version, machine
from ..utils import get_logger, write_json_atomic
from .demo import CONTROL
from .registry import EXPERIMENTS

__all__ = ["run_all", "plan", "Unit", "CONTROL_DIR", "format_all", "write_science_outputs"]

# the learning check's control (FixedRF trained on time-shuffled fMRI, as the demo's) lives here
CONTROL_DIR = "control"
MAIN_MODEL = ("fixed_rf", "B2P-FixedRF")


class Unit:
    """One job of the run: a training (or a baseline fit), or a variant's evaluation.

    Attributes
    ----------
    experiment, label : str
        The variant it runs (for a training: the first variant with its key, in the registry's
        order).
    stage : {"train", "evaluate"}
    cost : float
        Estimated relative cost (iterations weighted by the networks a step runs), for the order
        and the time estimate.
    shared : list of str
        ``experiment / label`` of the other variants this training serves.
    control : bool
        The time-shuffled control of the learning check.
    order : int
        Evaluations run group by group in this order (see :func:`plan`).
    """

    def __init__(self, experiment, label, stage, cost=1.0, control=False, order=0):
        self.experiment, self.label, self.stage = experiment, label, stage
        self.cost, self.control, self.order, self.shared = float(cost), control, order, []

    @property
    def name(self):
        what = f"{self.experiment} / {self.label}"
        return what + (" (time-shuffled control)" if self.control else "")


# relative cost per training sample of the baseline fits, in the units of _training_cost (one
# generator step of batch 8 with the paper's three losses is 3.2): baseline 1 runs C3D on every
# training sample's clip, the ridge floor one linear solve
_FIT_COST = {"nishimoto": 3.0, "ridge": 0.05}


def _training_cost(config, n_samples):
    """Iterations times the relative cost of one (the networks it runs, the batch)."""
    t = config.train
    steps = max(n_samples // t.batch_size, 1)
    if t.max_steps_per_epoch:
        steps = min(steps, t.max_steps_per_epoch)
    per_step = 1.0 + (1.0 if config.loss.adversarial_weight else 0.0) \
        + (1.2 if config.loss.feature_weight else 0.0)
    return t.epochs * steps * per_step * t.batch_size / 8.0


def plan(data, profile, overrides, weights):
    """The units of the run, from the registry and the resolved settings of every variant.

    Returns
    -------
    trainings : list of Unit
        One per distinct training key (plus baseline fits and the control), longest first.
    evaluations : list of Unit
        One per variant, in the order of their ``order`` attribute: 0 the baselines (the
        others are tested against them), 1 one variant per training, 2 the variants sharing a
        training with an earlier one.
    """
    from ..data.dataset import sets_tr, with_recorded_tr
    from ..io.prepared import PreparedSplit
    from .runner import experiment_config, training_key

    train_path = os.path.join(data, "train.h5")
    n_samples = len(PreparedSplit(train_path).samples)
    trainings, evaluations, by_key = [], [], {}
    for experiment in EXPERIMENTS.values():
        for variant in experiment.variants:
            # the baselines first (the others are tested against them), then one variant per
            # training, then those sharing a training (they reuse its per-frame metrics)
            evaluation = Unit(experiment.name, variant.label, "evaluate",
                              order=0 if experiment.name == "baselines" else 1)
            evaluations.append(evaluation)
            if variant.kind != "train":
                trainings.append(Unit(experiment.name, variant.label, "train",
                                      cost=_FIT_COST[variant.kind] * n_samples))
                continue
            config = with_recorded_tr(experiment_config(variant.config, profile, overrides,
                                                        weights), train_path, sets_tr(overrides))
            key = training_key(config, train_path)
            if key in by_key:
                by_key[key].shared.append(f"{experiment.name} / {variant.label}")
                evaluation.order = 2
                continue
            unit = Unit(experiment.name, variant.label, "train",
                        _training_cost(config, int(n_samples * config.train.train_fraction)))
            by_key[key] = unit
            trainings.append(unit)
    main = next(u for u in trainings if (u.experiment, u.label) == MAIN_MODEL
                or " / ".join(MAIN_MODEL) in u.shared)
    trainings.append(Unit(*MAIN_MODEL, "train", main.cost, control=True))
    trainings.sort(key=lambda u: -u.cost)
    evaluations.sort(key=lambda u: u.order)
    return trainings, evaluations


def _worker_start(parent, log_level):
    """In every worker: quiet logging, and die with the parent (a ``kill -9`` of the run must
    not leave workers training behind it)."""
    from ..utils import setup_logging

    setup_logging(False)
    get_logger().setLevel(log_level)
    try:                                    # Linux: the kernel kills us with the parent
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def _run_unit(unit, data, out, profile, overrides, weights, gpus, show_progress):
    """Run one unit in a worker; returns what it did and how long it took."""
    from .runner import run_experiment

    start = time.time()
    root, extra = out, list(overrides)
    if unit.control:
        root, extra = os.path.join(out, CONTROL_DIR), extra + [CONTROL]
    summary = run_experiment(unit.experiment, data, root, profile, extra, weights, gpus,
                             show_progress=show_progress, variants=[unit.label],
                             evaluate=unit.stage == "evaluate", tables=False)
    return {"unit": unit.name, "stage": unit.stage, "seconds": round(time.time() - start, 1),
            "status": summary["variants"][0]}


def _done_before(result):
    """Whether a unit's own work was found finished by an earlier invocation of the run (an
    evaluation finds its training done before in every invocation: that does not count)."""
    status = result["status"]
    if result["stage"] == "evaluate":
        return status.get("evaluation") == "done before"
    return any(value == "done before" for key, value in status.items() if key != "evaluation")


def resumed_note(summary):
    """How to read a summary's wall time when an earlier invocation did part of the run ('' if
    none did)."""
    before = summary.get("units_done_before") or 0
    if not before:
        return ""
    return (f"this invocation only: {before} of {len(summary.get('units') or [])} units were "
            f"done by an earlier, interrupted one, whose time is not counted")


def _minutes(seconds):
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _worker_died(unit, jobs):
    """The error for a worker process that ended without an answer (killed by the kernel's
    out-of-memory killer, a signal or a crash inside a native library)."""
    from ..errors import TrainingError

    fewer = f" or with `--jobs {jobs - 1}` to use less memory" if jobs > 1 else ""
    return TrainingError(
        f"a worker process ended abruptly while running {unit.name} (killed: by the kernel "
        f"for lack of memory? `dmesg | grep -i killed` tells); every finished step is kept: run "
        f"the same command again to resume{fewer}")


def _execute(units, jobs, args, log, what, done_before=0, total=None):
    """Run units ``jobs`` at a time (in worker processes; in order for jobs=1 too, so that every
    unit runs with the same threads whatever ``jobs`` is), one log line per start and end."""
    if not units:
        return []
    total = total or len(units)
    results, spent, cost_done = [], 0.0, 0.0
    remaining = sum(u.cost for u in units)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_start,
                                                initargs=(os.getpid(), log.level)) as pool:
        pending = {}
        queue = list(units)
        start = time.time()

        def submit():
            unit = queue.pop(0)
            n = done_before + len(results) + len(pending) + 1
            shared = f" (also {', '.join(unit.shared)})" if unit.shared else ""
            log.info("[science] %s %d of %d started: %s%s", what, n, total, unit.name, shared)
            pending[pool.submit(_run_unit, unit, *args)] = (unit, n)

        while queue and len(pending) < jobs:
            submit()
        while pending:
            finished, _ = concurrent.futures.wait(pending, return_when="FIRST_COMPLETED")
            for future in finished:
                unit, n = pending.pop(future)
                try:
                    result = future.result()    # a failed unit stops the run with its error
                except concurrent.futures.process.BrokenProcessPool as exc:
                    raise _worker_died(unit, jobs) from exc
                results.append(result)
                cost_done += unit.cost
                remaining -= unit.cost
                spent = time.time() - start
                eta = spent / max(cost_done, 1e-9) * remaining
                log.info("[science] %s %d of %d done in %s: %s (%s); ETA of the %s: %s", what,
                         n, total, _minutes(result["seconds"]), unit.name,
                         result["status"].get("training" if unit.stage == "train" else
                                              "evaluation") or "fitted", what + "s", _minutes(eta) if queue or pending else "done")
                if queue:
                    submit()
    return results


def run_all(out, data=None, profile="paper", overrides=(), weights=None, gpus="", jobs=None,
            data_home=None, show_progress=True):
    """Run every experiment, the learning check and the findings (see the module docstring).

    Parameters
    ----------
    out : str
        Results root: ``OUT/<experiment>/...`` as the single experiments write them, plus
        ``OUT/trainings``, ``OUT/control``, ``OUT/tables``, ``OUT/figures``,
        ``OUT/findings.{json,md}`` and ``OUT/science_summary.json``.
    data : str, optional
        Prepared data; default the embedded simulated dataset.
    profile : str
        A run profile (``science`` for ``make science``; ``paper`` for the published settings).
    overrides : sequence of str
    weights : str, optional
    gpus : str
        GPUs to train on (then one unit at a time unless ``jobs`` says otherwise).
    jobs : int, optional
        Units at a time; default 2 on a CPU with at least 2 cores, 1 with GPUs.
    data_home : str, optional
    show_progress : bool
        Progress bars inside units (only with ``jobs=1``: bars of parallel workers would
        interleave).

    Returns
    -------
    dict
        The summary written to ``OUT/science_summary.json``.
    """
    from ..data.embedded import simulated_dataset
    from ..model_zoo.pretrained import resolve_config_weights
    from .runner import experiment_config

    log = get_logger()
    start = time.time()
    out = os.fspath(out)
    if jobs is None:
        jobs = 1 if gpus else max(1, min(2, os.cpu_count() or 1))
    if int(jobs) < 1:
        from ..errors import ConfigError

        raise ConfigError(f"--jobs: expected a number of processes >= 1, got {jobs}")
    config = experiment_config("fixed_rf", profile, overrides, weights)
    config, resolved = resolve_config_weights(config)      # 'auto' decided once for every unit
    overrides = list(overrides) + resolved
    embedded = data is None
    if embedded:
        data = simulated_dataset(config, data_home, show_progress)
    data_at = time.time()
    # one unit = one core: MXNet's CPU training of these batches gains little from a second
    # thread, and a fixed thread count keeps every rerun's arithmetic identical
    threads = max(1, (os.cpu_count() or 1) // jobs)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    trainings, evaluations = plan(data, profile, overrides, weights)
    args = (data, out, profile, overrides, weights, gpus, show_progress and jobs == 1)
    log.info("[science] %d trainings and baseline fits, then %d evaluations, %d at a time (%s "
             "profile) -> %s", len(trainings), len(evaluations), jobs, profile, out)
    trained = _execute(trainings, jobs, args, log, "training")
    train_at = time.time()
    evaluated = []
    for order in (0, 1, 2):         # each group waits for the one before it
        group = [u for u in evaluations if u.order == order]
        evaluated += _execute(group, jobs, args, log, "evaluation", done_before=len(evaluated),
                              total=len(evaluations))
    eval_at = time.time()
    outputs = write_science_outputs(out, data, config, embedded=embedded,
                                    control_root=os.path.join(out, CONTROL_DIR))
    summary = {
        "out": os.path.abspath(out), "profile": profile, "data": os.path.abspath(data),
        "embedded_data": embedded, "settings": list(overrides), "jobs": jobs,
        "threads_per_job": int(os.environ.get("OMP_NUM_THREADS", threads)),
        **code_version(), "marks": outputs["marks"], "machine": machine(gpus),
        "seconds": round(time.time() - start, 1),
        "seconds_by_stage": {"data": round(data_at - start, 1),
                             "trainings and baseline fits": round(train_at - data_at, 1),
                             "evaluations": round(eval_at - train_at, 1),
                             "tables, figures, learning check, findings":
                                 round(time.time() - eval_at, 1)},
        "units": trained + evaluated,
        # a resumed run: "seconds" is this invocation's time only
        "units_done_before": sum(1 for r in trained + evaluated if _done_before(r)),
        **{k: v for k, v in outputs.items() if k != "marks"},
    }
    write_json_atomic(os.path.join(out, "science_summary.json"), summary)
    return summary


def _figures(out, main_recon, control_recon, ridge_recon):
    """Figs. 3-6 from the registry's panels, and the floors figure, into ``OUT/figures``."""
    from ..plotting import consecutive_frames, model_grid, panel_grid, save_figure
    from .registry import figure_inputs

    folder = os.path.join(out, "figures")
    made = {"fig3": consecutive_frames(main_recon, start="busiest", count=8),
            "fig4": model_grid(figure_inputs(out, "fig4"), count=6),
            "fig5": panel_grid(figure_inputs(out, "fig5"), count=5),
            "fig6": model_grid(figure_inputs(out, "fig6"), count=6),
            "floors": model_grid({"B2P-FixedRF": main_recon, "ridge floor": ridge_recon,
                                  "time-shuffled control": control_recon}, count=8)}
    return [save_figure(fig, os.path.join(folder, f"{name}.png"), dpi=120, bbox_inches="tight")
            for name, fig in made.items()]


def write_science_outputs(out, data, config, embedded, control_root):
    """Tables 1-8, the figures, the learning check, what a viewer recognises and the findings.

    Parameters
    ----------
    out : str
        Results root holding every variant's reconstructions and evaluations.
    data : str
        The prepared data they were made from.
    config : Config
        The resolved settings of the main model (evaluation settings, weights).
    embedded : bool
        The data are the embedded world's (their per-frame labels are read).
    control_root : str
        Results root of the time-shuffled control (``OUT/control``).

    Returns
    -------
    dict
        Paths (``findings_json``, ``findings_md``, ``tables_md``, ``figures``,
        ``learning_check``), ``marks``, ``findings`` (verdicts per finding) and ``learns``.
    """
    import mxnet as mx
    import numpy as np

    from ..data.dataset import RFSImageDataset
    from ..evaluation.evaluate import field_mask
    from ..evaluation.features import feature_extractor
    from ..evaluation.learning_check import format_learning_check, learning_check
    from ..evaluation.metrics import fine_scale_share, mean_training_frame, repetition
    from .tables import write_tables
    from ..io.reconstructions import read_reconstructions
    from ..training.builder import dataset_mode
    from .findings import (compute_findings, load_scores, render_findings, summary_means,
                           variants_of_findings, RIDGE)
    from .registry import result_path

    main_recon = result_path(out, *MAIN_MODEL, "recon")
    control_recon = result_path(control_root, *MAIN_MODEL, "recon")
    ridge_recon = result_path(out, *RIDGE, "recon")
    tables = write_tables(out, os.path.join(out, "tables"))
    figures = _figures(out, main_recon, control_recon, ridge_recon)
    first = read_reconstructions(main_recon)
    mask, _ = field_mask(first["attrs"], first["targets"].shape[-1])
    train_path = os.path.join(data, "train.h5")
    mean_frame = mean_training_frame(RFSImageDataset(train_path, config.data.rois, 1.0,
                                                     dataset_mode(config)))
    labels = None
    if embedded:
        from ..data.embedded import embedded_labels
        from ..data.simulation import labels_for
        from ..evaluation.recognition import world_classifier

        world = embedded_labels(data)
        sets, characters = labels_for(world, first["run_names"], first["samples"])
        labels = {"sets": sets, "characters": characters,
                  "classifier": world_classifier(train_path, world, mask)}
    extractor = feature_extractor(config.evaluation, mx.cpu())
    check = learning_check(main_recon, control_recon, mean_frame, extractor,
                           seed=config.evaluation.seed, mask=mask,
                           batch_size=config.evaluation.batch_size, ridge_path=ridge_recon,
                           labels=labels)
    per_frame = check.pop("per_frame")
    check_text = format_learning_check(check)
    np.savez_compressed(os.path.join(out, "learning_check_per_frame.npz"),
                        **{f"{who}__{key}": np.asarray(values)
                           for who, metrics in per_frame.items()
                           for key, values in metrics.items()})
    write_json_atomic(os.path.join(out, "learning_check.json"), check)

    scores, targets = load_scores(out, variants_of_findings(), mask)

    import types

    # what the frames themselves score
    ground_truth = types.SimpleNamespace(fine_scale=fine_scale_share(targets, mask),
                                         repetition=repetition(targets, mask))

    marks = sorted({m for v in variants_of_findings()
                    for m in _json(result_path(out, *v, "results")).get("marks", [])})
    findings = compute_findings(scores, ground_truth, marks)
    recognition = _recognition_rows(out, scores, labels, check) if labels else {}
    vs_ridge = check["model_vs_ridge"]
    reference = [
        ("learning check", "B2P-FixedRF against the same model trained on time-shuffled fMRI "
                           "(two-way identification on AlexNet pool2 and pool5, PixCorr in the "
                           "valid field; per-frame paired t-test and sign test)",
         "**learns from the brain signal**" if check["passed"] else "**did not learn**"),
        ("ridge floor (not in the paper)", "B2P-FixedRF against a ridge decoder of the same "
                                           "RFSimages, per frame",
         "; ".join(f"{k}: {c['model_mean']:.3f} vs {c['other_mean']:.3f} (t-test p "
                   f"{c['t_p']:.2g})" for k, c in vs_ridge.items())),
    ]
    n = len(targets)
    header = [f"Profile **{config.train.profile}**; {n} held-out test frames; data "
              f"{'the embedded world (simulated)' if embedded else data}; package "
              f"{__version__}.",
              ("Marks: **" + "; ".join(marks) + "**") if marks else "Marks: none",
              "The 12 metrics are AlexNet and C3D features; "
              + ("with RANDOM weights: they are not the paper's metrics, and their verdicts are "
                 "about these random-feature versions." if any("RANDOM EVALUATION" in m
                                                                for m in marks)
                 else "pretrained weights."),
              "Verdicts: holds / does not hold / not testable here (see the parts below)."]
    md = render_findings(findings, header, reference, recognition.get("lines", ()))
    findings_md = os.path.join(out, "findings.md")
    findings_json = os.path.join(out, "findings.json")
    from ..utils import write_text_atomic

    write_text_atomic(findings_md, md)
    write_json_atomic(findings_json, {
        "profile": config.train.profile, "n_frames": n, "marks": marks, "alpha": 0.05,
        "findings": findings,
        "learning_check": {"passed": check["passed"], "floors_passed": check["floors_passed"],
                           "criteria": check["criteria"], "text": check_text},
        "recognition": recognition.get("table", {}),
        "means": summary_means(scores)})
    return {"findings_json": findings_json, "findings_md": findings_md,
            "tables_md": [t for t in tables if t.endswith("tables.md")][0], "figures": figures,
            "learning_check": os.path.join(out, "learning_check.json"),
            "learning_check_text": check_text, "marks": marks, "learns": check["passed"],
            "findings": {f["id"]: f["verdicts"] for f in findings}}


def _recognition_rows(out, scores, labels, check):
    """What a viewer recognises, for every variant of the findings and the check's rows."""
    from ..evaluation.recognition import recognition_per_frame, recognition_summary
    from ..io.reconstructions import read_reconstructions
    from .registry import result_path

    table = {}
    for (experiment, label) in scores:
        images = read_reconstructions(result_path(out, experiment, label, "recon"))
        table[f"{experiment} / {label}"] = recognition_summary(recognition_per_frame(
            images["reconstructions"], labels["sets"], labels["characters"],
            labels["classifier"]))
    for name, summary in check["recognition"].items():
        table[{"model": "B2P-FixedRF (learning check)", "control": "time-shuffled control",
               "ridge": "ridge floor", "mean_frame": "mean training frame",
               "ground_truth": "ground truth (what the scoring reaches)"}.get(name, name)] = summary
    lines = ["What a viewer recognises (the embedded world's labels; information, in no "
             "verdict): the set shown (nearest colour-layout centroid of the training frames) "
             "and where the characters are (peak departure from the set's mean frame).", "",
             "| reconstructions | set correct | location error (px) | hit rate |",
             "|---|---|---|---|"]
    for name, r in table.items():
        lines.append(f"| {name} | {100 * r['set_accuracy']:.1f} % | {r['location_error']:.1f} | "
                     f"{100 * r['location_hit_rate']:.1f} % |")
    tests = check.get("recognition_tests", {})
    for key, t in tests.items():
        err = t["error"]
        lines.append(f"\nB2P-FixedRF {key.replace('_', ' ')}: set McNemar p {t['set']['p']:.2g}; "
                     f"hits McNemar p {t['hit']['p']:.2g}; location error "
                     + (f"{err['difference']:+.1f} px (t-test p {err['t_p']:.2g})" if err
                        else "not comparable") + ".")
    return {"table": table, "lines": lines}


def format_all(summary):
    """What ``brain2pix experiment all`` prints at the end: the findings table and where
    everything is."""
    lines = ["", f"=== all seven experiments ({summary['profile']} profile) finished in "
                 f"{_minutes(summary['seconds'])} ({summary['jobs']} at a time on "
                 f"{summary['machine']['cores']} cores) ==="]
    note = resumed_note(summary)
    if note:
        lines.append(f"wall time: {note}")
    if summary["marks"]:
        lines.append("marks: " + "; ".join(summary["marks"]))
    with open(summary["findings_md"]) as handle:
        lines.append(handle.read())
    lines += [f"findings        {summary['findings_md']}  (+ {os.path.basename(summary['findings_json'])})",
              f"tables          {summary['tables_md']}",
              f"figures         {', '.join(summary['figures'])}",
              f"summary         {os.path.join(summary['out'], 'science_summary.json')}"]
    return "\n".join(lines)


def _json(path):
    with open(path) as handle:
        return json.load(handle)
