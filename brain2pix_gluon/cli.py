"""The ``brain2pix`` command, the package's one entry point: simulate, estimate-rf, prepare,
inspect, train, launch, reconstruct, evaluate, baseline, tables, experiment, demo, report.

Every command that uses settings takes ``section.key=value`` overrides anywhere on its line (they
win over ``--config`` and ``--profile``); ``brain2pix COMMAND --help`` lists its options."""

import argparse
import json
import os
import re
import sys

from .errors import Brain2PixError, describe_os_error
from .utils import setup_logging

__all__ = ["main", "build_parser", "CHECK_FAILED", "EXIT_STATUSES", "demo_exit_status"]

# exit status of `brain2pix demo` when its model did not learn from the brain signal (the run
# itself succeeded)
CHECK_FAILED = 3

# The one table of exit statuses: `brain2pix --help` prints it and the README quotes it.
EXIT_STATUSES = (
    (0, "done (a scientific outcome, such as a finding that does not hold or a model below the "
        "ridge floor, is reported, never an exit status)"),
    (1, "operating-system error (disk full, permission, read-only file system); the file and "
        "the fix are named"),
    (2, "refused input: a bad setting, file or checkpoint, or an output folder in use by another "
        "brain2pix process; the message names it"),
    (CHECK_FAILED, "`brain2pix demo` only: the model did not learn from the brain signal (it "
                   "did not beat chance and the time-shuffled control)"),
    (130, "interrupted by Ctrl-C (SIGINT): partial files removed, training checkpointed"),
    (143, "terminated (SIGTERM, e.g. a scheduler's time limit): as 130"),
)


def demo_exit_status(check):
    """Exit status of ``brain2pix demo`` from its learning check.

    Only the learning verdict counts (the model against chance and the time-shuffled control);
    the floors (mean frame, ridge decoder) are reported beside it and never fail the run.

    Parameters
    ----------
    check : dict
        :func:`~brain2pix_gluon.evaluation.learning_check.learning_check`'s result.

    Returns
    -------
    int
        0, or :data:`CHECK_FAILED`.
    """
    return 0 if check["passed"] else CHECK_FAILED


def _config(args):
    """The config file, then the profile, then the command line's overrides (which win)."""
    from .config import apply_overrides, load_config
    from .experiments.profiles import apply_profile

    config = load_config(getattr(args, "config", None))
    profile = getattr(args, "profile", None)
    if profile:
        config = apply_profile(config, profile)
    overrides = getattr(args, "overrides", []) or []
    return apply_overrides(config, overrides) if overrides else config


def cmd_simulate(args):
    from .data.simulation import simulate_dataset

    config = _config(args)
    out = _one_of(args, "out", "legacy_out")
    simulate_dataset(out, config.simulation, config.data, not args.no_progress)
    print(out)


def cmd_prepare(args):
    from .preprocessing.prepare import prepare_dataset

    written = prepare_dataset(args.dataset, _one_of(args, "out", "legacy_out"), _config(args),
                              force=args.force, show_progress=not args.no_progress)
    for split, path in written.items():
        print(f"{split}: {path}")


def cmd_estimate_rf(args):
    from .preprocessing.estimate_rf import estimate_rf

    written = estimate_rf(args.dataset, args.out, _config(args), force=args.force,
                          show_progress=not args.no_progress, keep_work=args.keep_work)
    for kind, path in written.items():
        print(f"{kind}: {path}")


def cmd_inspect(args):
    from .inspection import format_prepared, rf_coverage_figure, split_paths
    from .io.prepared import describe_prepared

    paths = split_paths(_one_of(args, "data", "legacy_data"))
    for path in paths:
        info = describe_prepared(path)
        if args.json:
            print(json.dumps(info, indent=2, default=str))
        else:
            print("\n".join(format_prepared(info)))
    if args.figure:
        rf_coverage_figure(paths[0], args.figure)
        print(f"RF coverage figure: {args.figure}")


def cmd_train(args):
    from .data.embedded import simulated_dataset
    from .training.checkpoint import find_checkpoint
    from .devices import make_contexts
    from .training.trainer import Trainer

    from .data.dataset import sets_tr, with_recorded_tr

    config = _config(args)
    data = args.data or simulated_dataset(config, show_progress=not args.no_progress)
    config = with_recorded_tr(config, os.path.join(data, "train.h5"), sets_tr(args.overrides))
    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise Brain2PixError(f"--out {out}: a file is in the way; expected a folder")
    existing, _ = find_checkpoint(out)
    if args.resume and existing is None:
        raise Brain2PixError(f"--resume: {out} holds no checkpoint (looked for "
                             f"{os.path.join(out, 'checkpoints')}/ckpt-*); run without --resume "
                             f"to start training there")
    if not args.resume and existing is not None:
        raise Brain2PixError(f"{out} already holds a checkpoint: pass --resume to continue it, "
                             f"or choose another --out")
    trainer = Trainer(config, os.path.join(data, "train.h5"), out, os.path.join(data, "test.h5"),
                      ctx=make_contexts(args.gpus), show_progress=not args.no_progress)
    if args.resume:
        trainer.resume()
    status = trainer.fit()
    print(f"{status}: {out}")
    if status == "interrupted":     # 130 after Ctrl-C (SIGINT), 143 after SIGTERM
        sys.exit(128 + int(trainer.stop_signal or 2))


def cmd_launch(args):
    from .launch import check_launch, launch

    command = list(args.training)
    if command[:1] == ["--"]:
        command = command[1:]
    if command[:1] != ["train"]:
        raise Brain2PixError(f"launch: expected the training to run after the options, as in "
                             f"`brain2pix launch --workers 2 -- train --out RUN "
                             f"train.kvstore=dist_sync`, got {' '.join(command) or 'nothing'!r}")
    # the section.key=value items were taken out of the line wherever they stood: the training's
    command += args.overrides
    train = build_parser().parse_args(command)
    check_launch(_config(train), args.workers)
    return launch([sys.executable, "-m", "brain2pix_gluon.cli"] + command, args.workers,
                  args.servers, args.grace, args.port)


def cmd_reconstruct(args):
    from .training.inference import reconstruct
    from .devices import make_contexts

    paths = reconstruct(args.checkpoint, _one_of(args, "data", "legacy_data"),
                        _one_of(args, "out", "legacy_out"), split=args.split,
                        ctx=make_contexts(args.gpus)[0], show_progress=not args.no_progress)
    for kind, path in paths.items():
        print(f"{kind}: {path}")


def cmd_evaluate(args):
    from .evaluation.evaluate import evaluate
    from .devices import make_contexts

    config = _config(args)
    baselines = {}
    for item in args.baseline or []:
        if "=" not in item:
            raise Brain2PixError(f"--baseline {item!r}: expected NAME=RECONSTRUCTIONS.h5")
        name, path = item.split("=", 1)
        baselines[name] = path
    results = evaluate(args.recon, args.out, config.evaluation, baselines, args.experiment,
                       args.label, make_contexts(args.gpus)[0], not args.no_progress)
    print(f"{results['label']}: {results['n_frames']} frames -> {args.out}/results.json"
          + (f"  [{'; '.join(results['marks'])}]" if results["marks"] else ""))
    for key, m in results["metrics"].items():
        print(f"  {key:<20} {m['mean']:10.4f} +- {m['sem']:.4f}   chance {m['chance_mean']:10.4f}   "
              f"p {m['p']:.3g}")
    for key, m in results["field_metrics"].items():
        print(f"  {key:<20} {m['mean']:10.4f} +- {m['sem']:.4f}")


def cmd_baseline(args):
    from .devices import make_contexts

    config = _config(args)
    if args.name == "ridge":
        from .baselines.ridge import run_ridge_baseline

        path = run_ridge_baseline(args.data, args.out, config, pool=args.pool,
                                  show_progress=not args.no_progress)
        print(f"ridge decoder reconstructions (not in the paper): {path}")
        return
    from .baselines import run_nishimoto_baseline

    path = run_nishimoto_baseline(args.data, args.out, config.evaluation, args.k,
                                  show_progress=not args.no_progress,
                                  ctx=make_contexts(args.gpus)[0])
    print(f"baseline 1 reconstructions: {path}")


def cmd_tables(args):
    from .experiments.tables import write_tables

    try:
        written = write_tables(args.results_dir, args.out)
    except FileNotFoundError as exc:
        raise Brain2PixError(str(exc)) from None
    md = [p for p in written if p.endswith("tables.md")][0]
    with open(md) as handle:
        print(handle.read())
    print(f"{len(written)} files written next to {md}")


def cmd_experiment(args):
    from .experiments import run_experiment

    profile, out = args.profile, args.out
    if args.name == "all":
        from .experiments.science import format_all, run_all

        if args.variant:
            raise Brain2PixError("experiment all: --variant picks variants of one experiment; "
                                 "name the experiment instead of all")
        summary = run_all(out, args.data, profile, args.overrides, args.weights, args.gpus,
                          jobs=args.jobs, show_progress=not args.no_progress)
        _write_report(out, after_run=True)
        print(format_all(summary))
        return 0
    if args.jobs is not None:
        raise Brain2PixError(f"experiment {args.name}: --jobs is for `experiment all`; one "
                             f"experiment runs its variants one after the other")
    summary = run_experiment(args.name, args.data, out, profile, args.overrides, args.weights,
                             args.gpus, show_progress=not args.no_progress, variants=args.variant,
                             tables=not args.no_tables)
    print(f"{summary['title']} ({summary['profile']} profile) -> {os.path.join(out, args.name)}")
    if summary["marks"]:
        print("  marks: " + "; ".join(summary["marks"]))
    for status in summary["variants"]:
        print(f"  {status['label']:<16} {status['results']}")
    md = [t for t in summary["tables"] if t.endswith("tables.md")]
    if md:
        with open(md[0]) as handle:
            print(handle.read())


def cmd_demo(args):
    from .experiments.demo import format_summary, run_demo

    summary = run_demo(args.out, args.weights, args.overrides, not args.no_progress)
    _write_report(args.out, after_run=True)
    print(format_summary(summary))
    return demo_exit_status(summary["learning_check"])


def _write_report(folder, out=None, max_video_frames=None, after_run=False):
    """Write the results page of a run folder; print its path (first) and list its gaps on
    stderr. Returns the :class:`~brain2pix_gluon.report.ReportResult`.

    ``after_run``: the page of a run that just finished (demo, science): a page that cannot be
    written is reported on stderr and the run's own result and exit status stand (its outputs
    are all on disk; ``brain2pix report`` tries again)."""
    from .report import MAX_VIDEO_FRAMES, write_report
    from .report.html import human_size

    try:
        result = write_report(folder, out, MAX_VIDEO_FRAMES if max_video_frames is None
                              else max_video_frames)
    except Exception as exc:        # noqa: BLE001 -- see the docstring
        if not after_run:
            raise
        import traceback

        print(f"brain2pix: the run finished, but its results page could not be written "
              f"({type(exc).__name__}: {exc}); try again with `brain2pix report {folder}`\n"
              + traceback.format_exc(), file=sys.stderr)
        return None
    gaps = f", {len(result.gaps)} gaps (listed on stderr)" if result.gaps else ""
    print(f"report          {result.path}  ({human_size(result.size)}{gaps}; open it in a "
          f"browser)", flush=True)
    for gap in result.gaps:
        print(f"brain2pix report: gap: {gap}", file=sys.stderr)
    return result


def cmd_report(args):
    _write_report(args.results_dir, args.out, args.max_video_frames)
    return 0


def cmd_doctor(args):
    from .doctor import run_doctor

    return run_doctor()


def build_parser():
    """The command line. One grammar for every command:

    * what a command works on (a dataset folder, a run, a reconstruction file) is positional;
    * prepared data is always ``--data DIR``;
    * where outputs go is always ``--out DIR``, never a folder of the working directory;
    * ``--config`` / ``section.key=value`` on commands that use settings, and ``--profile`` only
      on those whose settings a profile changes (train, evaluate, experiment).

    Earlier spellings (output and prepared folders as positional arguments) still work.
    """
    from .experiments.profiles import PROFILES
    from .experiments.registry import EXPERIMENTS, TABLE_GROUPS

    epilog = "exit status:\n" + "\n".join(f"  {code:>3}  {meaning}"
                                           for code, meaning in EXIT_STATUSES)
    parser = argparse.ArgumentParser(prog="brain2pix", description=__doc__, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
    sub = parser.add_subparsers(dest="command", required=True)

    def gpus(p, parallel=False):
        p.add_argument("--gpus", default="", help=(
            "e.g. 0, or 0,1 to train data parallel" if parallel else
            "e.g. 0: run on that GPU (of a list, the first is used)") + "; CPU when empty")

    def out(p, required=True, what="output folder"):
        p.add_argument("--out", required=required, metavar="DIR", help=what)

    def data(p, required=True, what="prepared data folder (written by `brain2pix prepare`)"):
        p.add_argument("--data", required=required, metavar="DIR", help=what)

    def legacy(p, dest):
        """An earlier positional spelling of an option, kept working (hidden from --help)."""
        p.add_argument(dest, nargs="?", help=argparse.SUPPRESS)

    def settings(p, profile=False):
        p.add_argument("--config", metavar="YAML",
                       help="experiment file (only the differences from the defaults)")
        if profile:
            p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                           help="run profile: paper (the published settings) or a short one "
                           "(e.g. quick: minutes on a CPU; its outputs are marked); overrides "
                           "win over it")
        p.add_argument("overrides", nargs="*", metavar="section.key=value",
                       help="settings that differ from the config (e.g. train.epochs=10)")

    def no_progress(p):
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")

    p = sub.add_parser("simulate", help="write the simulated raw dataset")
    out(p, required=False, what="folder of the raw dataset to write")
    legacy(p, "legacy_out")
    no_progress(p)
    settings(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("estimate-rf", help="fit every ROI voxel's pRF (centre, size, "
                       "cross-validated R^2) from the training runs; writes the centre files")
    p.add_argument("dataset", metavar="DATASET", help="raw dataset (data.dataset=raw) or vim-2 "
                   "folder (data.dataset=vim2)")
    out(p, required=False, what="output folder (default DATASET, where prepare reads centres)")
    p.add_argument("--force", action="store_true", help="replace existing centre files")
    p.add_argument("--keep-work", action="store_true", help="keep the per-run work files")
    no_progress(p)
    settings(p)
    p.set_defaults(func=cmd_estimate_rf)

    p = sub.add_parser("prepare", help="raw fMRI + videos -> prepared HDF5 RFSimage data")
    p.add_argument("dataset", metavar="DATASET", help="raw dataset (data.dataset=raw) or vim-2 "
                   "folder (data.dataset=vim2)")
    out(p, required=False, what="prepared data folder to write (train.h5, test.h5)")
    legacy(p, "legacy_out")
    p.add_argument("--force", action="store_true", help="rebuild splits that are up to date")
    no_progress(p)
    settings(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("inspect", help="schema, sizes and provenance of a prepared dataset")
    data(p, required=False, what="prepared data folder, or one of its split files")
    legacy(p, "legacy_data")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.add_argument("--figure", metavar="PNG",
                   help="draw each ROI's RF centres (dorsal/ventral) over a warped frame")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("train", help="train a model on prepared data")
    data(p, required=False, what="prepared data folder (default: the embedded simulated dataset)")
    out(p, what="run folder (checkpoints, log, config.yaml)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    gpus(p, parallel=True)
    no_progress(p)
    settings(p, profile=True)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("launch", help="train one model across processes or machines with "
                       "MXNet's parameter server: scheduler, servers and workers on this machine, "
                       "or this task's under srun (one task per machine); every process's output "
                       "with its name in front, and none outlives the launch")
    p.add_argument("--workers", type=int, required=True, metavar="N",
                   help="worker processes (under SLURM: the number of tasks)")
    p.add_argument("--servers", type=int, default=1, metavar="S",
                   help="parameter servers, each holding a part of the parameters (1)")
    p.add_argument("--port", type=int, default=None, help="the scheduler's port (default: a free "
                   "one; under SLURM 10000 + SLURM_JOB_ID %% 20000)")
    p.add_argument("--grace", type=float, default=30.0, metavar="SECONDS",
                   help="how long processes asked to stop get before SIGKILL (30)")
    p.add_argument("training", nargs=argparse.REMAINDER, metavar="-- train ...",
                   help="the training, with train.kvstore=dist_sync; train.batch_size is the "
                   "batch over all workers and must be a multiple of N")
    p.set_defaults(func=cmd_launch, overrides=[])

    p = sub.add_parser("reconstruct", help="test-set reconstructions as HDF5, MP4 and GIF")
    p.add_argument("checkpoint", metavar="RUN", help="run folder or checkpoint folder")
    data(p, required=False)
    out(p, required=False, what="folder for reconstructions.h5, .mp4 and .gif")
    legacy(p, "legacy_data")
    legacy(p, "legacy_out")
    p.add_argument("--split", default="test", choices=("train", "test"),
                   help="which prepared split to reconstruct (test)")
    gpus(p)
    no_progress(p)
    p.set_defaults(func=cmd_reconstruct)

    groups = sorted(TABLE_GROUPS) + ["misc"]
    p = sub.add_parser("evaluate", help="the paper's 12 metrics, significance and field metrics")
    p.add_argument("recon", metavar="RECONSTRUCTIONS.h5", help="written by reconstruct or a "
                   "baseline")
    out(p, what="results folder (results.json, per_frame.csv)")
    p.add_argument("--baseline", action="append", metavar="NAME=OTHER.h5",
                   help="binomial test against another model's reconstructions (repeatable)")
    p.add_argument("--experiment", default="misc", choices=groups,
                   help="table group of the result: " + ", ".join(groups) + " (misc: no paper "
                   "table)")
    p.add_argument("--label", help="row name in the tables (default: the model name)")
    gpus(p)
    no_progress(p)
    settings(p, profile=True)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("baseline", help="nishimoto: baseline 1 (C3D encoding + retrieval); "
                       "ridge: a linear pixel decoder from the RFSimages, the floor a deep "
                       "decoder must clear (not in the paper); baselines 2 and 3 are trained "
                       "with `train --config configs/baseline*.yaml`")
    p.add_argument("name", choices=("nishimoto", "ridge"), help="the baseline")
    data(p)
    out(p, what="folder for reconstructions.h5 and the fitted model")
    p.add_argument("--k", type=int, default=10, help="nishimoto: training frames averaged (10)")
    p.add_argument("--pool", type=int, default=None, help="ridge: side of the average-pooled "
                   "RFSimages (default a quarter of the image side: 24 = 4 x 4 pooling of 96 px)")
    gpus(p)
    no_progress(p)
    settings(p)
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("experiment", help="one of the paper's seven experiments end to end: train "
                       "every variant, reconstruct, evaluate, tables (skips finished steps, resumes "
                       "interrupted training)")
    p.add_argument("name", choices=list(EXPERIMENTS) + ["all"],
                   help="; ".join(f"{e.name}: {e.title}" for e in EXPERIMENTS.values())
                   + "; all: every experiment, the learning check of FixedRF and the findings "
                   "table (make science)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="all: trainings and evaluations run N at a time, each in its own "
                   "process (default 2 on a CPU with 2 or more cores, 1 with --gpus)")
    data(p, required=False, what="prepared data folder (default: the embedded simulated dataset)")
    out(p, what="results root (OUT/NAME/... per variant, OUT/tables)")
    p.add_argument("--weights", help="auto | pretrained | random | path: VGG/AlexNet/C3D weights "
                   "(default: the configs' 'auto': pretrained when cached or downloadable, else "
                   "random, marked)")
    gpus(p, parallel=True)
    p.add_argument("--variant", action="append", metavar="NAME",
                   help="run only this variant, by slug or label (repeatable); tables cover every "
                   "variant whose results exist")
    p.add_argument("--no-tables", action="store_true",
                   help="skip the tables (e.g. in array jobs; run `brain2pix tables` after)")
    no_progress(p)
    p.add_argument("--profile", choices=sorted(PROFILES), default="paper",
                   help="run profile: paper (the published settings, the default) or a short one "
                   "(e.g. quick: minutes on a CPU; its outputs are marked)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value",
                   help="settings that differ from every variant's config")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("demo", help="the whole pipeline on the embedded simulated dataset with the "
                       "learning check (make demo); exit 3 when the model does not learn from "
                       "the brain signal (the floors are reported, never an exit status)")
    out(p, what="output folder (make demo: demo_output)")
    p.add_argument("--weights", default="auto",
                   help="auto (default: pretrained when cached or downloadable, else random, "
                   "marked), pretrained, random, or a folder/file")
    no_progress(p)
    p.add_argument("overrides", nargs="*", metavar="section.key=value",
                   help="settings that differ from the demo's")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("tables", help="Tables 1-8 (Markdown, CSV, LaTeX) from results.json files")
    p.add_argument("results_dir", metavar="RESULTS", help="results root (searched for "
                   "results.json files)")
    out(p, required=False, what="output folder (default RESULTS/tables)")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("report", help="one self-contained HTML page of a run (demo, science run, "
                       "results root or one experiment): provenance, findings, learning check, "
                       "Tables 1-8, figures, a video per variant, learning curves, per-frame "
                       "scores; damaged or missing inputs are named gaps (listed on stderr, exit "
                       "0); exit 2 when RESULTS holds no run")
    p.add_argument("results_dir", metavar="RESULTS", help="a run folder: brain2pix demo --out, "
                   "brain2pix experiment [all|NAME] --out, or one experiment's folder")
    p.add_argument("--out", metavar="FILE.html", help="the page (default RESULTS/report.html)")
    p.add_argument("--max-video-frames", type=int, default=None, metavar="N",
                   help="frames of each variant's video at most (default 90: the page stays "
                   "small enough to e-mail at the paper's scale; it says when it caps)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("doctor", help="what this machine has and lacks (MXNet build, GPUs, CUDA "
                       "libraries, ffmpeg, pretrained weights, folders, CPU), each with its fix; "
                       "exit 1 when a default run cannot work")
    p.set_defaults(func=cmd_doctor)
    return parser


def _one_of(args, option, legacy):
    """The value of ``--option``, or of its earlier positional spelling; exactly one is needed."""
    new, old = getattr(args, option), getattr(args, legacy)
    if new is not None and old is not None and new != old:
        raise Brain2PixError(f"--{option}: given twice ({new} and, as a positional argument, "
                             f"{old}); pass --{option} only")
    value = new if new is not None else old
    if value is None:
        raise Brain2PixError(f"brain2pix {args.command}: --{option} DIR is required")
    return value


_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*=")


def _options_with_values(parser):
    """Option strings (of every subcommand) that take a value, e.g. ``--baseline``, ``--out``."""
    found = set()
    for action in parser._actions:
        if action.option_strings and action.nargs != 0:
            found.update(action.option_strings)
        for sub in getattr(action, "choices", None) or {}:
            if isinstance(action.choices, dict):
                found |= _options_with_values(action.choices[sub])
    return found


def _split_overrides(parser, argv):
    """Take the ``section.key=value`` items out of ``argv``.

    They may stand anywhere on the line (argparse would refuse them after an option), except as
    the value of an option: in ``--baseline other=x.h5`` the item belongs to ``--baseline``.
    """
    takes_value = _options_with_values(parser)
    overrides, rest = [], []
    for k, item in enumerate(argv):
        is_value = k > 0 and argv[k - 1] in takes_value
        if _OVERRIDE.match(item) and not item.startswith("-") and not is_value:
            overrides.append(item)
        else:
            rest.append(item)
    return overrides, rest


def _raise_terminated(signum, frame):
    """SIGTERM handler: unwind like Ctrl-C (clean-ups run), then exit 143."""
    from .errors import Terminated

    raise Terminated()


def main(argv=None):
    """Run the ``brain2pix`` command line.

    Returns
    -------
    int
        One of :data:`EXIT_STATUSES`.
    """
    code = _main(argv)
    if argv is None:    # the command itself, not a call from Python code (tests, notebooks)
        from .io.hdf5 import shutdown_unsafe

        if shutdown_unsafe():
            # an HDF5 write failed (a full disk): HDF5's own shutdown at exit may crash on the
            # memory that failure leaked (see io.hdf5.shutdown_unsafe); our files are closed
            import logging

            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return code


def _main(argv):
    import signal
    import threading

    from .config import check_overrides_once
    from .errors import Terminated

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides, rest = _split_overrides(parser, argv)
    args = parser.parse_args(rest)
    if overrides and not hasattr(args, "overrides"):
        parser.error(f"{args.command} takes no section.key=value overrides, got {overrides}")
    if hasattr(args, "overrides"):
        args.overrides = list(args.overrides or []) + overrides
    setup_logging(args.verbose)
    # SIGTERM (kill, a scheduler's time limit) unwinds like Ctrl-C; train catches both itself
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        check_overrides_once(getattr(args, "overrides", None) or [])
        code = args.func(args)
    except Brain2PixError as exc:
        print(f"brain2pix {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"brain2pix {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except Terminated as exc:
        detail = f": {exc}" if str(exc) else ""
        print(f"brain2pix {args.command}: terminated (SIGTERM); partial files removed{detail}",
              file=sys.stderr)
        return 143
    except KeyboardInterrupt as exc:
        detail = f": {exc}" if str(exc) else ""
        print(f"brain2pix {args.command}: interrupted{detail}", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return code or 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
