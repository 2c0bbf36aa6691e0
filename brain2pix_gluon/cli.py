"""The ``brain2pix`` command: simulate, prepare, inspect, train, reconstruct, evaluate, tables."""

import argparse
import json
import logging
import os
import sys

from .errors import Brain2PixError

__all__ = ["main", "build_parser"]


def _setup_logging(verbose):
    logger = logging.getLogger("brain2pix_gluon")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[brain2pix] %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def _config(args):
    from .config import load_config
    from .profiles import apply_profile

    config = load_config(getattr(args, "config", None), getattr(args, "overrides", []) or [])
    profile = getattr(args, "profile", None)
    return apply_profile(config, profile) if profile else config


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
                  f"{d['compression'] or ''}")
        cfg = info["config"]
        print(f"   data config: shift {cfg.get('shift')}, window {cfg.get('n_trs')} TRs, size "
              f"{cfg.get('image_size')}, fisheye {cfg.get('fisheye')} (max_ratio "
              f"{cfg.get('max_ratio')}), index order {cfg.get('rf_index_order')}")
        print(f"   sources: {len(info['sources'])} files with sha256 checksums")


def cmd_train(args):
    from .datasets import simulated_dataset
    from .training.trainer import Trainer, make_contexts

    config = _config(args)
    data = args.data or simulated_dataset(config, show_progress=not args.no_progress)
    out = args.out or os.path.join("results", "runs", config.name)
    trainer = Trainer(config, os.path.join(data, "train.h5"), out, os.path.join(data, "test.h5"),
                      ctx=make_contexts(args.gpus), show_progress=not args.no_progress)
    if args.resume:
        trainer.resume()
    elif os.path.exists(os.path.join(out, "checkpoints", "latest")):
        raise Brain2PixError(f"{out} already holds a checkpoint: pass --resume to continue it, "
                             f"or choose another --out")
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
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        args.func(args)
    except Brain2PixError as exc:
        print(f"brain2pix {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
