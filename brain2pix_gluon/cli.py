"""The ``brain2pix`` command: simulate, estimate-rf, prepare, inspect, train, reconstruct, evaluate,
tables."""

import argparse
import json
import logging
import os
import re
import sys

from .errors import Brain2PixError, describe_os_error

__all__ = ["main", "build_parser"]


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (it may be replaced)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _setup_logging(verbose):
    logger = logging.getLogger("brain2pix_gluon")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("[brain2pix] %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def _config(args):
    """The config file, then the profile, then the command line's overrides (which win)."""
    from .config import apply_overrides, load_config
    from .profiles import apply_profile

    config = load_config(getattr(args, "config", None))
    profile = getattr(args, "profile", None)
    if profile:
        config = apply_profile(config, profile)
    overrides = getattr(args, "overrides", []) or []
    return apply_overrides(config, overrides) if overrides else config


def cmd_simulate(args):
    from .simulation import simulate_dataset

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
              f"{cfg.get('max_ratio')}), index order {cfg.get('rf_index_order')}")
        print(f"   sources: {len(info['sources'])} files with sha256 checksums")


def cmd_train(args):
    from .datasets import simulated_dataset
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
    if status == "interrupted":
        sys.exit(130)


def cmd_reconstruct(args):
    from .reconstruct import reconstruct
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
    from .baselines import run_nishimoto_baseline
    from .training.trainer import make_contexts

    config = _config(args)
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


def build_parser():
    parser = argparse.ArgumentParser(prog="brain2pix", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

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
    p.add_argument("raw_dir", help="raw dataset (dataset=raw) or vim-2 folder (dataset=vim2)")
    p.add_argument("--out", help="output folder (default RAW_DIR, where prepare reads centres)")
    p.add_argument("--force", action="store_true", help="replace existing centre files")
    p.add_argument("--keep-work", action="store_true", help="keep the per-run work files")
    common(p)
    p.set_defaults(func=cmd_estimate_rf)

    p = sub.add_parser("inspect", help="schema, sizes and provenance of a prepared dataset")
    p.add_argument("path", help="prepared directory or one split file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("train", help="train a model on prepared data")
    p.add_argument("--data", help="prepared directory (default: the embedded simulated dataset)")
    p.add_argument("--out", help="run directory (default results/runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--gpus", default="", help="e.g. 0 or 0,1 (data parallel); CPU when empty")
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("reconstruct", help="test-set reconstructions as HDF5, MP4 and GIF")
    p.add_argument("checkpoint", help="run directory or checkpoint directory")
    p.add_argument("prepared_dir")
    p.add_argument("out")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--gpus", default="")
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
    p.add_argument("--gpus", default="")
    common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("baseline", help="baseline 1 (Nishimoto-like C3D encoding + retrieval); "
                       "baselines 2 and 3 are trained with `train --config configs/baseline*.yaml`")
    p.add_argument("name", choices=("nishimoto",))
    p.add_argument("--data", required=True, help="prepared directory")
    p.add_argument("--out", required=True)
    p.add_argument("--k", type=int, default=10, help="training frames averaged (10)")
    p.add_argument("--gpus", default="")
    common(p)
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("tables", help="Tables 1-8 (Markdown, CSV, LaTeX) from results.json files")
    p.add_argument("results_dir")
    p.add_argument("--out", help="output folder (default RESULTS_DIR/tables)")
    p.set_defaults(func=cmd_tables)
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


def main(argv=None):
    """Run the ``brain2pix`` command line.

    Returns
    -------
    int
        0 on success; 2 for a refused input (bad setting, data, checkpoint); 1 for an operating
        system error (disk full, permission, read-only file system, wrong kind of path); 130
        when interrupted (Ctrl-C, or a training stopped with a checkpoint).
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides, rest = _split_overrides(parser, argv)
    args = parser.parse_args(rest)
    if overrides and not hasattr(args, "overrides"):
        parser.error(f"{args.command} takes no section.key=value overrides, got {overrides}")
    if hasattr(args, "overrides"):
        args.overrides = list(args.overrides or []) + overrides
    _setup_logging(args.verbose)
    try:
        args.func(args)
    except Brain2PixError as exc:
        print(f"brain2pix {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"brain2pix {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"brain2pix {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
