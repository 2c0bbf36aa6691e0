"""Does the science run's FixedRF learn from the brain signal on every world? One learning check per
simulator seed.

For each seed: the embedded world simulated with that seed (its own cast placements, scenes,
voxels and test clips), FixedRF trained with the ``science`` profile and, side by side, the same
model on time-shuffled fMRI, then the demo's learning check (chance, the control, the floors, what
a viewer recognises). Prints one table row per seed and the verdict; every run's outputs stay in
``--out``.

Usage::

    python benchmarks/learning_seeds.py --out /tmp/seeds              # seeds 0, 1, 2
    python benchmarks/learning_seeds.py --out /tmp/seeds --seeds 3 4

About 15 minutes per seed on a quiet 2-core CPU; random VGG-19 / AlexNet / C3D weights unless
``--weights`` says otherwise (every figure says which).
"""

import argparse
import os
import platform
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder of the per-seed runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--weights", default="random")
    args = parser.parse_args()

    from brain2pix_gluon.experiments.demo import run_demo
    from brain2pix_gluon.utils import setup_logging

    setup_logging(False)
    rows = []
    for seed in args.seeds:
        start = time.time()
        s = run_demo(os.path.join(args.out, f"seed{seed}"), args.weights,
                     [f"simulation.seed={seed}", "simulation.n_test_clips=4"],
                     show_progress=False, profile="science")
        check = s["learning_check"]
        rows.append((seed, check, time.time() - start, s["marks"]))
    print(f"\nFixedRF (science profile) against the same model on time-shuffled fMRI; machine: "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"{'seed':>4} {'frames':>6} {'PixCorr model/control/ridge':>30} "
          f"{'pool2 2-way model/control':>26} {'set correct model/control/ridge':>32}  learns  "
          f"minutes")
    for seed, c, seconds, marks in rows:
        f, t, r = c["field"], c["twoway"], c.get("recognition", {})
        sets = "/".join(f"{100 * r[k]['set_accuracy']:.0f}%" for k in ("model", "control", "ridge")
                        if k in r)
        print(f"{seed:>4} {c['n_frames']:>6} "
              f"{f['model']['pixcorr_disc']['mean']:>10.3f}/{f['control']['pixcorr_disc']['mean']:.3f}"
              f"/{f['ridge']['pixcorr_disc']['mean']:.3f} "
              f"{100 * t['model']['twoway_alexnet2']['mean']:>14.1f}/"
              f"{100 * t['control']['twoway_alexnet2']['mean']:.1f} % "
              f"{sets:>32}  {'PASSED' if c['passed'] else 'FAILED':>6}  {seconds / 60:7.1f}")
    print("marks: " + "; ".join(sorted({m for *_, marks in rows for m in marks})))


if __name__ == "__main__":
    main()
