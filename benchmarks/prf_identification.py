"""Are estimated RF centres good enough for Brain2Pix? Estimated vs true centres on the simulator.

On the default simulated dataset (``brain2pix simulate``: 96 px, V1-V3, every voxel's true pRF
known), this script

1. runs ``estimate-rf`` and prints, per ROI, the median centre error in pixels (at 96 px) and the
   median sigma error for the voxels above the R^2 threshold (the goal: <= 1 px median for V1);
2. prepares the dataset with the estimated centres, with the simulator's true centres and with
   the true centres shifted by ``--shifts`` pixels (default 3 and 6) in a random direction per
   voxel (each written into a copy of the raw dataset's centre files), trains FixedRF on each
   with the same small budget and seed, reconstructs the test clips and prints the two-way
   identification accuracy of each (AlexNet pool5 and pool2 with RANDOM weights: pretrained
   weights cannot be downloaded here) and its ratio to the true centres' (goal >= 0.9 for the
   estimated centres). The shifted centres say how good a user's centre maps must be.

Run with ``python benchmarks/prf_identification.py`` (about 20 minutes on a shared 2-core machine
at the default budget, 4 models); ``--steps`` sets the training steps of each model (at 120 the
models stay near chance), ``--keep DIR`` keeps the work files and reuses the simulated dataset, the
estimates and the reconstructions found there; settings (``section.key=value``) apply to every step, e.g.
``simulation.seed=1`` or ``prf.drive=contrast``.
"""

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

from brain2pix_gluon.io.names import CENTRE_FILES, ROIS

# the same small budget and seed for both models (random-weight feature loss, narrow nets)
TRAIN = ["model.ngf=16", "model.ndf=8", "loss.feature_weights=random", "loss.feature_resize=64",
         "train.epochs=1", "train.lr=0.001", "train.seed=0", "train.batch_size=8",
         "train.grid_samples=2"]


def centre_errors(est_path, truth_path, keys, r2_threshold, size):
    """Median centre and sigma errors (pixels) per ROI for voxels above the R^2 threshold."""
    est, truth = dict(np.load(est_path)), dict(np.load(truth_path))
    out = {}
    for roi in ROIS:
        parts = [k for k in keys if k.startswith(roi)]
        cat = lambda src, name: np.concatenate([src[f"{k}_{name}"] for k in parts])
        r2 = cat(est, "r2")
        kept = np.isfinite(r2) & (r2 >= r2_threshold)
        err = np.hypot(cat(est, "x") - cat(truth, "x"), cat(est, "y") - cat(truth, "y"))[kept]
        sig = np.abs(cat(est, "sigma") - cat(truth, "sigma"))[kept]
        out[roi] = {"kept": int(kept.sum()), "n": int(kept.size),
                    "centre_px": float(np.median(err) * size),
                    "centre_p90_px": float(np.percentile(err, 90) * size),
                    "sigma_px": float(np.median(sig) * size)}
    return out


def shifted_centres(x, y, shift_px, size, seed=0):
    """Centres moved by ``shift_px`` pixels in a random direction each, kept inside the frame.

    Parameters
    ----------
    x, y : ndarray, shape (n,)
        Image units (-0.5 ... 0.5).
    shift_px : float
        Distance in pixels of a ``size``-pixel frame.

    Returns
    -------
    x, y : ndarray, shape (n,)
    """
    angle = np.random.default_rng(seed).uniform(0.0, 2 * np.pi, len(x))
    top = float(np.nextafter(np.float32(0.5), np.float32(0.0)))   # stays below 0.5 as float32
    return (np.clip(x + shift_px / size * np.cos(angle), -0.5, top),
            np.clip(y + shift_px / size * np.sin(angle), -0.5, top))


def raw_copy(sim_dir, out, centres):
    """A copy of the raw dataset (runs linked) whose centre files are ``centres`` (col, row)."""
    os.makedirs(out)
    for name in os.listdir(sim_dir):
        if name in CENTRE_FILES:
            continue
        os.symlink(os.path.join(os.path.abspath(sim_dir), name), os.path.join(out, name))
    from brain2pix_gluon.io.matlab import write_mat

    for name, values in zip(CENTRE_FILES, centres):
        write_mat(os.path.join(out, name), {k: np.asarray(v, float)[:, None]
                                            for k, v in values.items()})
    return out


def identification(recon_path, weights_seed=0):
    """Two-way identification of reconstructions vs targets on random-weight AlexNet layers."""
    from brain2pix_gluon.config import EvalConfig
    from brain2pix_gluon.evaluation.features import feature_extractor
    from brain2pix_gluon.evaluation.stats import identification_test
    from brain2pix_gluon.io.reconstructions import read_reconstructions

    data = read_reconstructions(recon_path)
    extractor = feature_extractor(EvalConfig(feature_weights="random", seed=weights_seed))
    feats = {"rec": [], "gt": []}
    for start in range(0, len(data["targets"]), 32):
        for name, key in (("rec", "reconstructions"), ("gt", "targets")):
            feats[name].append(extractor.alexnet_features(data[key][start:start + 32]))
    out = {}
    for layer in ("alexnet_pool5", "alexnet_pool2"):
        rec = np.concatenate([f[layer] for f in feats["rec"]]).reshape(len(data["targets"]), -1)
        gt = np.concatenate([f[layer] for f in feats["gt"]]).reshape(len(data["targets"]), -1)
        out[layer] = identification_test(rec, gt, n_permutations=200, seed=0)["accuracy"]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps of each model")
    parser.add_argument("--keep", help="keep the work files in this folder")
    parser.add_argument("--shifts", default="3,6",
                        help="pixels by which the true centres are also moved (comma-separated)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value")
    args = parser.parse_args()
    from brain2pix_gluon.cli import main as cli
    from brain2pix_gluon.config import Config, apply_overrides
    from brain2pix_gluon.io.names import MASK_KEYS

    overrides = list(args.overrides)
    config = apply_overrides(Config(), overrides)
    shifts = [float(v) for v in args.shifts.split(",") if v.strip()]
    size = config.data.image_size
    work = args.keep or tempfile.mkdtemp(prefix="prf-identification-")
    os.makedirs(work, exist_ok=True)
    t0 = time.perf_counter()
    try:
        sim = os.path.join(work, "sim")
        if not os.path.exists(os.path.join(sim, "truth.npz")):
            assert cli(["simulate", "--out", sim, "--no-progress", *overrides]) == 0
        rf = os.path.join(work, "rf")
        if not os.path.exists(os.path.join(rf, "prf_estimates.npz")):
            assert cli(["estimate-rf", sim, "--out", rf, "--no-progress", *overrides]) == 0
        t_rf = time.perf_counter() - t0
        errors = centre_errors(os.path.join(rf, "prf_estimates.npz"),
                               os.path.join(sim, "truth.npz"), MASK_KEYS,
                               config.prf.r2_threshold, size)
        print(f"estimate-rf on the default simulated dataset ({config.simulation.n_train_runs} "
              f"runs x {config.simulation.volumes_per_run} volumes, {size} px, drive "
              f"{config.prf.drive}, R^2 >= {config.prf.r2_threshold}); simulate + estimate "
              f"{t_rf:.0f} s")
        for roi, e in errors.items():
            print(f"  {roi}: {e['kept']:4d}/{e['n']} voxels kept; centre error median "
                  f"{e['centre_px']:.2f} px (90th percentile {e['centre_p90_px']:.2f} px); sigma "
                  f"error median {e['sigma_px']:.2f} px")
        print(f"  V1 goal <= 1 px median: {'met' if errors['V1']['centre_px'] <= 1 else 'NOT met'}")

        from brain2pix_gluon.io.matlab import read_mat

        truth = dict(np.load(os.path.join(sim, "truth.npz")))
        true_centres = ({k: truth[f"{k}_x"] for k in MASK_KEYS},
                        {k: truth[f"{k}_y"] for k in MASK_KEYS})
        est_centres = tuple({k: np.asarray(v, float).reshape(-1) for k, v in
                             read_mat(os.path.join(rf, name)).items() if k in MASK_KEYS}
                            for name in CENTRE_FILES)
        runs = [("estimated", est_centres), ("true", true_centres)]
        for shift in shifts:
            moved = {k: shifted_centres(truth[f"{k}_x"], truth[f"{k}_y"], shift, size, seed=i)
                     for i, k in enumerate(MASK_KEYS)}
            runs.append((f"true + {shift:g} px", ({k: v[0] for k, v in moved.items()},
                                                   {k: v[1] for k, v in moved.items()})))
        scores = {}
        for label, centres in runs:
            start = time.perf_counter()
            slug = label.replace(" + ", "_plus_").replace(" ", "")
            done = os.path.join(work, f"recon_{slug}", "reconstructions.h5")
            if args.keep and os.path.exists(done):      # a model of an earlier run, same centres
                scores[label] = identification(done)
                print(f"  {label} centres: two-way identification "
                      + ", ".join(f"{k} {v:.3f}" for k, v in scores[label].items())
                      + "  (reconstructions kept from an earlier run)")
                continue
            raw = os.path.join(work, f"raw_{slug}")
            if os.path.exists(raw):
                shutil.rmtree(raw)
            raw_copy(sim, raw, centres)
            prepared = os.path.join(work, f"prepared_{slug}")
            assert cli(["prepare", raw, "--out", prepared, "--no-progress", "--force",
                        *overrides]) == 0
            run = os.path.join(work, f"run_{slug}")
            shutil.rmtree(run, ignore_errors=True)
            assert cli(["train", "--data", prepared, "--out", run, "--no-progress", *TRAIN,
                        f"train.max_steps_per_epoch={args.steps}", *overrides]) == 0
            recon = os.path.join(work, f"recon_{slug}")
            assert cli(["reconstruct", run, "--data", prepared, "--out", recon,
                        "--no-progress"]) == 0
            scores[label] = identification(os.path.join(recon, "reconstructions.h5"))
            print(f"  {label} centres: two-way identification "
                  + ", ".join(f"{k} {v:.3f}" for k, v in scores[label].items())
                  + f"  ({time.perf_counter() - start:.0f} s)")
        print(f"Brain2Pix FixedRF, {args.steps} steps of batch 8, seed 0, ngf 16 / ndf 8, "
              f"random-weight feature loss; identification on random-weight AlexNet features:")
        for layer in ("alexnet_pool5", "alexnet_pool2"):
            true = scores["true"][layer]
            for label, _ in runs:
                if label == "true":
                    continue
                got = scores[label][layer]
                goal = (f" (goal >= 0.9: {'met' if got / true >= 0.9 else 'NOT met'})"
                        if label == "estimated" else "")
                # the ratio of accuracies and, stricter, of their margins over chance
                print(f"  {layer}: {label} {got:.3f} / true {true:.3f} = ratio {got / true:.3f}"
                      f"{goal}; above chance {got - 0.5:+.3f} vs {true - 0.5:+.3f}, ratio "
                      f"{(got - 0.5) / (true - 0.5) if true > 0.5 else float('nan'):.2f}")
        print(f"total {time.perf_counter() - t0:.0f} s")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
