"""Cross-check of ``estimate-rf``'s pRF fit against an independent pRF library from PyPI (pyprf).

pyprf (Marquardt et al.; ``pip install pyprf==3.0.0``) fits the linear Gaussian pRF of Dumoulin &
Wandell (2008) by a grid search on least squares. It needs numpy >= 1.26 and so cannot be
installed beside MXNet 1.9.1 and numpy 1.23: this script

1. reads the default simulated dataset (or ``--sim-dir``) as ``estimate-rf`` does, and per run
   computes the stimulus drive (``prf.drive``), convolves it with the HRF and projects each run's
   mean and onset response out of it and out of the responses (what ``fit_prf`` does), for
   ``--voxels`` voxels per ROI;
2. fits those voxels with this package (``fit_prf``: the configured model, and the linear model on
   the same drive, which is pyprf's model);
3. exports the design, the responses and the true pRFs to ``WORK/export.npz``, creates (or reuses)
   a virtual environment with pyprf at ``--venv`` and fits the export there
   (``prf_crosscheck_worker.py``: pyprf's own Gaussian pooling and grid search);
4. prints, per ROI, the median distance of each fit's centres from the truth and from each other,
   and the time each took.

pyprf is a cross-check here, not a dependency: nothing in the package imports it. Creating the
environment needs PyPI; the fits take several minutes (pyprf builds every model time course in
Python). Run with ``python benchmarks/prf_crosscheck.py [--sim-dir DIR] [prf.drive=contrast]``.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

PYPRF = "pyprf==3.0.0"
HERE = os.path.dirname(os.path.abspath(__file__))


def ensure_venv(path):
    """The Python of a virtual environment with pyprf at ``path``, created if missing."""
    python = os.path.join(path, "bin", "python")
    check = [python, "-c", "import pyprf"]
    if os.path.exists(python) and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating a virtual environment with {PYPRF} at {path} (needs PyPI)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", path], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", PYPRF], check=True)
    subprocess.run(check, check=True)
    return python


def load_runs(sim_dir, config, per_roi, seed=0):
    """Drives and responses of the training runs for ``per_roi`` random voxels of each ROI.

    Returns
    -------
    drives : list of ndarray, each shape (n_volumes_r, S, S)
    signals : list of ndarray, each shape (n_volumes_r, n_voxels)
    truth : dict of str -> ndarray, shape (n_voxels,)
        ``x``, ``y``, ``sigma`` and ``roi``.
    tr : float
    """
    from brain2pix_gluon.io.sources import open_source
    from brain2pix_gluon.preprocessing.prf import model_drive

    source = open_source(sim_dir, config)
    true = np.load(os.path.join(sim_dir, "truth.npz"))
    rng = np.random.default_rng(seed)
    columns, truth = [], {"x": [], "y": [], "sigma": [], "roi": []}
    for roi, keys in source.parts.items():
        brain = np.concatenate([np.flatnonzero(source.masks[k]) for k in keys])
        pick = np.sort(rng.choice(len(brain), min(per_roi, len(brain)), replace=False))
        columns.append(brain[pick])
        for name in ("x", "y", "sigma"):
            truth[name].append(np.concatenate([true[f"{k}_{name}"] for k in keys])[pick])
        truth["roi"].append(np.full(len(pick), roi))
    columns = np.concatenate(columns)
    truth = {k: np.concatenate(v) for k, v in truth.items()}
    drives, signals = [], []
    for run in source.runs("train"):
        (_, run_signals), = source.read_signals(run)
        drive = model_drive(source.load_frames(run), run_signals.shape[0], config.prf,
                            config.data.max_ratio, config.data.fisheye)
        drives.append(drive)
        signals.append(np.asarray(run_signals[:len(drive)][:, columns], np.float32))
    return drives, signals, truth, source.tr


def export_design(drives, signals, tr):
    """What pyprf fits: every run's drive convolved with the HRF and the responses, each with the
    run's mean and onset response projected out (responses scaled to unit variance), concatenated.

    Returns
    -------
    design : ndarray, shape (n_volumes, S, S), float32
    responses : ndarray, shape (n_volumes, n_voxels), float32
    """
    from brain2pix_gluon.preprocessing.hrf import double_gamma_hrf, hrf_convolve
    from brain2pix_gluon.preprocessing.prf import _chunk_signals, _project_out, run_nuisance

    hrf = double_gamma_hrf(tr)
    bases = [run_nuisance(len(d), hrf) for d in drives]
    design = np.concatenate([_project_out(hrf_convolve(d, hrf), b) for d, b in zip(drives, bases)])
    ys, _ = _chunk_signals(signals, bases, 0, signals[0].shape[1])
    return design.astype(np.float32), np.concatenate(ys).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-dir", help="an existing simulated dataset (default: simulate one)")
    parser.add_argument("--voxels", type=int, default=200, help="voxels per ROI")
    parser.add_argument("--venv", default=os.path.join(tempfile.gettempdir(),
                                                       "brain2pix-prf-crosscheck-venv"))
    parser.add_argument("--positions", type=int, default=32,
                        help="pyprf's grid: centres along x and along y")
    parser.add_argument("--sizes", type=int, default=10, help="pyprf's grid: pRF sizes")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value")
    args = parser.parse_args()
    from brain2pix_gluon.config import Config, apply_overrides, with_changes
    from brain2pix_gluon.preprocessing.prf import fit_prf, is_compressive

    config = apply_overrides(Config(), list(args.overrides))
    if config.prf.drive == "features":
        # pyprf fits one drive map per volume; it has no model with a weight per image feature
        parser.error("prf.drive=features has no counterpart in pyprf (one drive per volume): "
                     "cross-check with prf.drive=luminance or prf.drive=contrast")
    python = ensure_venv(args.venv)
    with tempfile.TemporaryDirectory(prefix="prf-crosscheck-") as work:
        sim_dir = args.sim_dir
        if sim_dir is None:
            from brain2pix_gluon.data.simulation import simulate_dataset

            sim_dir = os.path.join(work, "sim")
            simulate_dataset(sim_dir, config.simulation, config.data, show_progress=False)
        drives, signals, truth, tr = load_runs(sim_dir, config, args.voxels)
        size = drives[0].shape[1]
        fits = {}
        models = [("ours", config.prf)]
        if is_compressive(config.prf):
            models.append(("ours linear", with_changes(config, prf={"css_exponents": (1.0,)}).prf))
        for label, prf in models:
            start = time.perf_counter()
            fits[label] = fit_prf(drives, signals, tr, prf, work_dir=work)
            fits[label]["seconds"] = time.perf_counter() - start
        design, responses = export_design(drives, signals, tr)
        export = os.path.join(work, "export.npz")
        np.savez(export, design=design, responses=responses, n_positions=args.positions,
                 n_sizes=args.sizes, sd_min_px=config.prf.sigma_min * size,
                 sd_max_px=config.prf.sigma_max * size, **{f"true_{k}": v for k, v in truth.items()})
        result = os.path.join(work, "pyprf.npz")
        subprocess.run([python, os.path.join(HERE, "prf_crosscheck_worker.py"), export, result],
                       check=True, stdout=subprocess.DEVNULL)
        theirs = dict(np.load(result))
    # pyprf's centres are pixel indices of the design (x = column, y = row)
    fits["pyprf"] = {"x": (theirs["x"] + 0.5) / size - 0.5, "y": (theirs["y"] + 0.5) / size - 0.5,
                     "sigma": theirs["sd"] / size, "seconds": float(theirs["seconds"])}
    model = (f"compressive, exponents {config.prf.css_exponents}" if is_compressive(config.prf)
             else "linear")
    print(f"pRF cross-check on {sim_dir}: {len(truth['roi'])} voxels ({args.voxels} per ROI), "
          f"{sum(len(d) for d in drives)} volumes in {len(drives)} runs, drive "
          f"{config.prf.drive}; ours: {model}, grid stride {config.prf.grid_stride} px x "
          f"{config.prf.n_sigma} sigmas, refined; pyprf {theirs['version']}: linear, "
          f"{args.positions} x {args.positions} centres x {args.sizes} sizes, not refined")
    for label, fit in fits.items():
        print(f"  {label}: {fit['seconds']:.1f} s")
    labels = list(fits)
    for roi in np.unique(truth["roi"]):
        m = truth["roi"] == roi
        parts = []
        for label in labels:
            err = np.hypot(fits[label]["x"][m] - truth["x"][m], fits[label]["y"][m] - truth["y"][m])
            parts.append(f"{label} {np.median(err) * size:.2f}")
        between = [f"{label} vs pyprf " + format(np.median(np.hypot(
            fits[label]["x"][m] - fits["pyprf"]["x"][m],
            fits[label]["y"][m] - fits["pyprf"]["y"][m])) * size, ".2f")
            for label in labels if label != "pyprf"]
        sig = {label: np.median(np.abs(fits[label]["sigma"][m] - truth["sigma"][m])) * size
               for label in labels}
        print(f"  {roi}: median centre error (px of {size}) " + ", ".join(parts)
              + "; distance " + ", ".join(between) + " px; sigma error "
              + ", ".join(f"{k} {v:.2f}" for k, v in sig.items()) + " px")


if __name__ == "__main__":
    main()
