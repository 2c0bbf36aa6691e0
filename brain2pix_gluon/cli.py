"""The ``brain2pix`` command, the package's one entry point: simulate, estimate-rf, prepare,
inspect, train, reconstruct, evaluate, baseline, tables, experiment, demo.

Every command that uses settings takes ``section.key=value`` overrides anywhere on its line (they
win over ``--config`` and ``--profile``); ``brain2pix COMMAND --help`` lists its options."""

import argparse
import json
import os
import re
import sys

from .errors import Brain2PixError, describe_os_error
from .utils import setup_logging

__all__ = ["main", "build_parser", "CHECK_FAILED"]

# exit status of `brain2pix demo` when the learning check fails (the run itself succeeded)
CHECK_FAILED = 3


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
    simulate_dataset(args.out_dir, config.simulation, config.data, not args.no_progress)
    print(args.out_dir)


def cmd_prepare(args):
    from .preprocessing.prepare import prepare_dataset

    written = prepare_dataset(args.raw_dir, args.out_dir, _config(args), force=args.force,
                              show_progress=not args.no_progress)
    for split, path in written.items():
        print(f"{split}: {path}")


def cmd_estimate_rf(args):
    from .preprocessing.prf import estimate_rf

    written = estimate_rf(args.raw_dir, args.out, _config(args), force=args.force,
                          show_progress=not args.no_progress, keep_work=args.keep_work)
    for kind, path in written.items():
        print(f"{kind}: {path}")


def cmd_inspect(args):
    from .io.prepared import describe_prepared
    from .preprocessing.receptive_fields import format_retinotopy

    paths = [args.path]
    if os.path.isdir(args.path):
        paths = [os.path.join(args.path, f"{s}.h5") for s in ("train", "test")
                 if os.path.exists(os.path.join(args.path, f"{s}.h5"))]
        if not paths:
            raise Brain2PixError(f"{args.path}: no train.h5 or test.h5 inside")
    for path in paths:
        info = describe_prepared(path)
        if args.json:
            print(json.dumps(info, indent=2, default=str))
            continue
        print(f"== {info['file']}  ({info['split']}, {info['bytes'] / 1e6:.1f} MB, schema "
              f"v{info['schema_version']}, brain2pix_gluon {info['package_version']}, "
              f"created {info['created']})")
        print(f"   samples {info['n_samples']}, runs {len(info['runs'])}, ROIs "
              f"{', '.join(info['rois'])}, frames dropped at run ends {info['n_dropped']}, "
              f"{info['bytes_per_1000_samples'] / 1e6:.1f} MB per 1,000 samples")
        for name, d in sorted(info["datasets"].items()):
            print(f"   /{name:<18} {str(tuple(d['shape'])):<24} {d['dtype']:<8} "
                  f"{d['compression'] or '':<5}{' fletcher32' if d.get('fletcher32') else ''}")
        cfg = info["config"]
        print(f"   data config: shift {cfg.get('shift')}, window {cfg.get('n_trs')} TRs, size "
              f"{cfg.get('image_size')}, fisheye {cfg.get('fisheye')} (max_ratio "
              f"{cfg.get('max_ratio')}), rf_layout {cfg.get('rf_layout', 'unknown (older file)')}, "
              f"rf_swap_axes {cfg.get('rf_swap_axes')}, rf_flip_y {cfg.get('rf_flip_y')}")
        print(f"   sources: {len(info['sources'])} files with sha256 checksums")
        report = _retinotopy(path)
        if report is None:
            print("   retinotopy: not recorded (file prepared by an older version)")
        else:
            for line in format_retinotopy(report):
                print("   " + line)
    if args.figure:
        _coverage_figure(paths[0], args.figure)
        print(f"RF coverage figure: {args.figure}")


def _retinotopy(path):
    from .io.prepared import open_prepared

    with open_prepared(path) as handle:
        text = handle.attrs.get("retinotopy")
    return json.loads(text) if text else None


def _coverage_figure(path, out):
    from .io.prepared import open_prepared
    from .preprocessing.receptive_fields import plot_rf_coverage

    report = _retinotopy(path)
    if report is None:
        raise Brain2PixError(f"{path}: no retinotopy record (prepared by an older version); "
                             f"prepare it again to draw the coverage figure")
    with open_prepared(path) as handle:
        rois = json.loads(handle.attrs["rois"])
        centres = {roi: handle[f"rf_centres/{roi}"][()] for roi in rois}
        frame = handle["frames"][0].astype("float32") if handle["frames"].shape[0] else None
    # the first part of each ROI: dorsal voxels (raw layout), left hemisphere (vim-2)
    first = "n_lh" if report.get("kind") == "hemisphere" else "n_dorsal"
    n_dorsal = {roi: report["rois"][roi][first] for roi in rois}
    plot_rf_coverage(out, centres, n_dorsal, frame, report)


def cmd_train(args):
    from .data.embedded import simulated_dataset
    from .training.checkpoint import find_checkpoint
    from .training.trainer import Trainer, make_contexts

    config = _config(args)
    data = args.data or simulated_dataset(config, show_progress=not args.no_progress)
    out = args.out or os.path.join("results", "runs", config.name)
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


def cmd_reconstruct(args):
    from .training.inference import reconstruct
    from .training.trainer import make_contexts

    paths = reconstruct(args.checkpoint, args.prepared_dir, args.out, split=args.split,
                        ctx=make_contexts(args.gpus)[0], show_progress=not args.no_progress)
    for kind, path in paths.items():
        print(f"{kind}: {path}")


def cmd_evaluate(args):
    from .evaluation.evaluate import evaluate
    from .training.trainer import make_contexts

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
    from .training.trainer import make_contexts

    config = _config(args)
    if args.name == "ridge":
        from .baselines.ridge import run_ridge_baseline

        path = run_ridge_baseline(args.data, args.out, config, pool=args.pool,
                                  show_progress=not args.no_progress)
        print(f"ridge decoder reconstructions (not in the paper): {path}")
        return
    from .baselines import run_nishimoto_baseline

    path = run_nishimoto_baseline(args.data, args.out, config.evaluation.feature_weights, args.k,
                                  show_progress=not args.no_progress,
                                  ctx=make_contexts(args.gpus)[0])
    print(f"baseline 1 reconstructions: {path}")


def cmd_tables(args):
    from .evaluation.tables import write_tables

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

    profile = args.profile or "paper"
    out = args.out or ("results" if profile == "paper" else "results-quick")
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
    print(format_summary(summary))
    return 0 if summary["passed"] else CHECK_FAILED


def cmd_doctor(args):
    from .doctor import run_doctor

    return run_doctor()


def build_parser():
    parser = argparse.ArgumentParser(prog="brain2pix", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def gpus(p, parallel=False):
        p.add_argument("--gpus", default="", help=(
            "e.g. 0, or 0,1 to train data parallel" if parallel else
            "e.g. 0: run on that GPU (of a list, the first is used)") + "; CPU when empty")

    def common(p, config=True):
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        if config:
            p.add_argument("--config", help="YAML experiment file (differences from the defaults)")
            p.add_argument("--profile", choices=("paper", "quick"), default=None)
            p.add_argument("overrides", nargs="*", metavar="section.key=value")

    p = sub.add_parser("simulate", help="write the simulated raw dataset")
    p.add_argument("out_dir")
    common(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("prepare", help="raw fMRI + videos -> prepared HDF5 RFSimage data")
    p.add_argument("raw_dir")
    p.add_argument("out_dir")
    p.add_argument("--force", action="store_true", help="rebuild splits that are up to date")
    common(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("estimate-rf", help="fit every ROI voxel's pRF (centre, size, "
                       "cross-validated R^2) from the training runs; writes the centre files")
    p.add_argument("raw_dir", help="raw dataset (data.dataset=raw) or vim-2 folder "
                   "(data.dataset=vim2)")
    p.add_argument("--out", help="output folder (default RAW_DIR, where prepare reads centres)")
    p.add_argument("--force", action="store_true", help="replace existing centre files")
    p.add_argument("--keep-work", action="store_true", help="keep the per-run work files")
    common(p)
    p.set_defaults(func=cmd_estimate_rf)

    p = sub.add_parser("inspect", help="schema, sizes and provenance of a prepared dataset")
    p.add_argument("path", help="prepared directory or one split file")
    p.add_argument("--json", action="store_true")
    p.add_argument("--figure", metavar="PNG",
                   help="draw each ROI's RF centres (dorsal/ventral) over a warped frame")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("train", help="train a model on prepared data")
    p.add_argument("--data", help="prepared directory (default: the embedded simulated dataset)")
    p.add_argument("--out", help="run directory (default results/runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    gpus(p, parallel=True)
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("reconstruct", help="test-set reconstructions as HDF5, MP4 and GIF")
    p.add_argument("checkpoint", help="run directory or checkpoint directory")
    p.add_argument("prepared_dir")
    p.add_argument("out")
    p.add_argument("--split", default="test", choices=("train", "test"))
    gpus(p)
    common(p, config=False)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("evaluate", help="the paper's 12 metrics, significance and field metrics")
    p.add_argument("recon", help="reconstructions.h5")
    p.add_argument("--out", required=True, help="results directory")
    p.add_argument("--baseline", action="append", metavar="NAME=OTHER.h5",
                   help="binomial test against another model's reconstructions (repeatable)")
    p.add_argument("--experiment", default="misc",
                   help="table group: baseline, roi, ablation, data_size")
    p.add_argument("--label", help="row name in the tables (default: the model name)")
    gpus(p)
    common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("baseline", help="nishimoto: baseline 1 (C3D encoding + retrieval); "
                       "ridge: a linear pixel decoder from the RFSimages, the floor a deep "
                       "decoder must clear (not in the paper); baselines 2 and 3 are trained "
                       "with `train --config configs/baseline*.yaml`")
    p.add_argument("name", choices=("nishimoto", "ridge"))
    p.add_argument("--data", required=True, help="prepared directory")
    p.add_argument("--out", required=True)
    p.add_argument("--k", type=int, default=10, help="nishimoto: training frames averaged (10)")
    p.add_argument("--pool", type=int, default=None, help="ridge: side of the average-pooled "
                   "RFSimages (default a quarter of the image side: 24 = 4 x 4 pooling of 96 px)")
    gpus(p)
    common(p)
    p.set_defaults(func=cmd_baseline)

    from .experiments.registry import EXPERIMENTS

    p = sub.add_parser("experiment", help="one of the paper's seven experiments end to end: train "
                       "every variant, reconstruct, evaluate, tables (skips finished steps, resumes "
                       "interrupted training)")
    p.add_argument("name", choices=list(EXPERIMENTS),
                   help="; ".join(f"{e.name}: {e.title}" for e in EXPERIMENTS.values()))
    p.add_argument("--data", help="prepared directory (default: the embedded simulated dataset)")
    p.add_argument("--out", help="results root (default results, or results-quick)")
    p.add_argument("--profile", choices=("paper", "quick"), default=None)
    p.add_argument("--weights", help="auto | pretrained | random | path: VGG/AlexNet/C3D weights "
                   "(default: the configs' 'auto': pretrained when cached or downloadable, else "
                   "random, marked)")
    gpus(p, parallel=True)
    p.add_argument("--variant", action="append", metavar="NAME",
                   help="run only this variant, by slug or label (repeatable); tables cover every "
                   "variant whose results exist")
    p.add_argument("--no-tables", action="store_true",
                   help="skip the tables (e.g. in array jobs; run `brain2pix tables` after)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("overrides", nargs="*", metavar="section.key=value")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("demo", help="the whole pipeline on the embedded simulated dataset with the "
                       "learning check (make demo); exit 3 when the check fails")
    p.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--weights", default="auto",
                   help="auto (default: pretrained when cached or downloadable, else random, "
                   "marked), pretrained, random, or a folder/file")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("overrides", nargs="*", metavar="section.key=value")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("tables", help="Tables 1-8 (Markdown, CSV, LaTeX) from results.json files")
    p.add_argument("results_dir")
    p.add_argument("--out", help="output folder (default RESULTS_DIR/tables)")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("doctor", help="what this machine has and lacks (MXNet build, GPUs, CUDA "
                       "libraries, ffmpeg, pretrained weights, folders, CPU), each with its fix; "
                       "exit 1 when a default run cannot work")
    p.set_defaults(func=cmd_doctor)
    return parser


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
        0 on success; 2 for a refused input (bad setting, data, checkpoint, an output folder
        in use by another process); 1 for an operating system error (disk full, permission,
        read-only file system, wrong kind of path); 3 when ``brain2pix demo``'s learning check
        fails; 130 when interrupted by Ctrl-C (SIGINT) and 143 when terminated (SIGTERM): partial
        files are removed either way, and a training stops with a checkpoint.
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
