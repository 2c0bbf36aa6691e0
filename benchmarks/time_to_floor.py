"""Time to the floor: how long the demo's model trains before its held-out reconstructions beat the
ridge decoder and the mean training frame, and what the paper profile gives for its steps.

On the embedded simulated dataset (the demo's data): fits the ridge floor (``brain2pix baseline
ridge``) and the mean training frame, then trains the demo's model (experiments/demo.py) under a
profile,
scoring the held-out test clips after every epoch: PixCorr inside the valid field and pixel-space
two-way identification (the two floors of the demo's learning check). Prints, per profile, a row
per evaluation (steps, training wall time, both metrics) and the first step count (and wall time)
at which both metrics exceed the ridge floor and PixCorr exceeds the mean frame. Training time
only: evaluations are not counted.

The ``demo`` profile is trained exactly as ``make demo`` trains it (its own 24 epochs of 40
steps and learning-rate schedule; ``--steps`` and ``--every`` are ignored); any other profile
trains ``--steps`` steps in epochs of ``--every``.

Usage::

    python benchmarks/time_to_floor.py                         # the demo profile, 960 steps
    python benchmarks/time_to_floor.py --profile paper --steps 2000 --every 500

The paper profile runs about 7 s per step on a 2-core CPU (VGG-19 at 224 px): 2,000 steps take
hours. Random VGG-19 weights unless ``--weights`` says otherwise (every figure says which).
"""

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np


def _score(run_dir, test_path, mask, seen):
    """Held-out PixCorr (valid field) and pixel two-way of every epoch file not scored yet."""
    import mxnet as mx

    from brain2pix_gluon.data.dataset import RFSImageDataset
    from brain2pix_gluon.evaluation.metrics import (masked_pixels, pixcorr,
                                                    two_way_identification)
    from brain2pix_gluon.training.builder import dataset_mode
    from brain2pix_gluon.training.checkpoint import load_checkpoint_state
    from brain2pix_gluon.training.inference import load_generator, reconstruct_dataset

    _, _, run_config = load_checkpoint_state(run_dir)
    dataset = RFSImageDataset(test_path, None, 1.0, dataset_mode(run_config))
    nets, config, _ = load_generator(run_dir, dataset.n_voxels, dataset.in_channels,
                                     dataset.n_trs, dataset.size, mx.cpu())
    rows = []
    weights = sorted(f for f in os.listdir(os.path.join(run_dir, "weights"))
                     if f.startswith("net_g_epoch") and f not in seen)
    for name in weights:
        nets["net_g"].load_parameters(os.path.join(run_dir, "weights", name), ctx=mx.cpu())
        if nets["learned_rf"] is not None:
            nets["learned_rf"].load_parameters(os.path.join(
                run_dir, "weights", name.replace("net_g_", "learned_rf_")), ctx=mx.cpu())
        _, recon, targets = reconstruct_dataset(nets, config, dataset, 32, mx.cpu(), False)
        rows.append((int(name[len("net_g_epoch"):-len(".params")]),
                     float(np.mean(np.nan_to_num(pixcorr(recon, targets, mask)))),
                     float(np.mean(two_way_identification(masked_pixels(recon, mask),
                                                          masked_pixels(targets, mask))))))
        seen.add(name)
    return rows


def run_profile(profile, data, out, steps, every, weights, floors, mask, extra=()):
    from brain2pix_gluon.experiments.demo import DEMO_EXPERIMENT
    from brain2pix_gluon.experiments.runner import experiment_config
    from brain2pix_gluon.training.trainer import Trainer

    schedule = ([] if profile == "demo" else
                [f"train.epochs={max(1, steps // every)}", f"train.max_steps_per_epoch={every}"])
    config = experiment_config(DEMO_EXPERIMENT, profile, list(extra) + schedule +
                               ["train.save_weights_every=1"], weights)
    every = config.train.max_steps_per_epoch
    trainer = Trainer(config, os.path.join(data, "train.h5"), out,
                      os.path.join(data, "test.h5"), show_progress=False)
    trainer.fit()
    with open(os.path.join(out, "log.jsonl")) as handle:
        log = [json.loads(line) for line in handle if line.strip()]
    wall = np.cumsum([entry["seconds"] for entry in log])
    rows = _score(out, os.path.join(data, "test.h5"), mask, set())
    print(f"\n  profile {profile} ({trainer.marks() or 'no marks'}; batch "
          f"{config.train.batch_size}, lr {config.train.lr}):")
    print(f"  {'steps':>7}{'train s':>10}{'PixCorr':>10}{'pixel 2-way':>13}")
    cleared = None
    for (epoch, pc, tw), seconds in zip(rows, wall):
        n = epoch * every
        print(f"  {n:>7}{seconds:>10.0f}{pc:>10.3f}{100 * tw:>12.1f}%")
        if cleared is None and pc > floors["ridge_pixcorr"] and pc > floors["mean_pixcorr"] \
                and tw > floors["ridge_twoway"]:
            cleared = (n, seconds)
    if cleared:
        print(f"  -> above the ridge floor and the mean frame after {cleared[0]} steps, "
              f"{cleared[1]:.0f} s of training")
    else:
        print(f"  -> not above both floors within {config.train.epochs * every} steps")
    return rows, cleared


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", action="append", choices=("demo", "quick", "paper"),
                        help="profiles to time (default: demo, the demo's); repeat for several")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--every", type=int, default=120, help="steps between evaluations")
    parser.add_argument("--weights", default="random", help="VGG-19 weights (random here)")
    parser.add_argument("--data-home", default=None, help="where the embedded dataset is cached")
    parser.add_argument("--seed", type=int, default=0, help="simulator seed")
    parser.add_argument("--drive", default="cortex", choices=("luminance", "cortex"),
                        help="the simulated voxels' model (simulation.drive)")
    args = parser.parse_args()

    from brain2pix_gluon.baselines.ridge import run_ridge_baseline
    from brain2pix_gluon.data.dataset import RFSImageDataset
    from brain2pix_gluon.data.embedded import simulated_dataset
    from brain2pix_gluon.evaluation.metrics import (fisheye_valid_mask, masked_pixels,
                                                    mean_training_frame, pixel_metrics,
                                                    pixcorr, two_way_identification)
    from brain2pix_gluon.experiments.runner import experiment_config
    from brain2pix_gluon.io.reconstructions import read_reconstructions

    profiles = args.profile or ["demo"]
    config = experiment_config("fixed_rf", "quick", [f"simulation.seed={args.seed}",
                                                     f"simulation.drive={args.drive}"], "random")
    data = simulated_dataset(config, args.data_home, show_progress=False)
    mask = fisheye_valid_mask(config.data.image_size, config.data.max_ratio, config.data.fisheye)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.time()
        ridge = read_reconstructions(run_ridge_baseline(data, os.path.join(tmp, "ridge"), config,
                                                        show_progress=False))
        ridge_s = time.time() - start
        targets = ridge["targets"]
        mean = mean_training_frame(RFSImageDataset(os.path.join(data, "train.h5"), None, 1.0,
                                                   "rf"))
        floors = {
            "ridge_pixcorr": float(np.mean(np.nan_to_num(pixcorr(ridge["reconstructions"],
                                                                 targets, mask)))),
            "ridge_twoway": float(np.mean(two_way_identification(
                masked_pixels(ridge["reconstructions"], mask), masked_pixels(targets, mask)))),
            "mean_pixcorr": float(np.mean(np.nan_to_num(
                pixel_metrics(np.broadcast_to(mean, targets.shape), targets,
                              mask)["pixcorr_disc"]))),
        }
        print(f"time to the floor on {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores; simulator seed {args.seed}, drive {args.drive}, "
              f"{len(targets)} held-out "
              f"frames; VGG-19 weights: {args.weights}")
        print(f"  ridge floor: PixCorr {floors['ridge_pixcorr']:.3f}, pixel 2-way "
              f"{100 * floors['ridge_twoway']:.1f}% (fitted in {ridge_s:.0f} s); mean training "
              f"frame: PixCorr {floors['mean_pixcorr']:.3f}")
        for profile in profiles:
            run_profile(profile, data, os.path.join(tmp, profile), args.steps, args.every,
                        args.weights, floors, mask, [f"simulation.seed={args.seed}",
                                                     f"simulation.drive={args.drive}"])


if __name__ == "__main__":
    main()
