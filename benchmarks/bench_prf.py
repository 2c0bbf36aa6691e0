"""pRF estimation speed (``brain2pix estimate-rf``'s fit) and its extrapolation to 10,000 x 10,000.

Times :func:`brain2pix_gluon.preprocessing.prf.fit_prf` on random stimulus drives and signals
(96 x 96 frames, runs of ``--run-volumes`` volumes) streamed from memory maps on disk, as
``estimate-rf`` does; video decoding is not included. Settings on the command line choose the
model (``prf.drive=contrast``: the compressive model). The linear model's work is one product
``signals^T drive`` per run and voxel chunk plus ``n_runs + 1`` poolings of every voxel's
cross-product map; the compressive model's is one product ``signals^T courses`` per run, exponent
and chunk with every candidate's time course; the multi-feature model's (``prf.drive=features``,
the default) is the linear model's for each of six feature maps, with at most 5 folds of runs
plus one fit on all runs. The first two are proportional to voxels x volumes (at a
fixed run length), plus the model time courses and their variances, proportional to volumes. Two
sizes are measured to separate the two terms.

Run with ``python benchmarks/bench_prf.py [prf.drive=contrast]`` (a few minutes on 2 cores);
``--full`` also fits 10,000 voxels x 10,000 volumes once (the linear model: a few minutes and
~1 GB on disk in a temporary folder; the multi-feature model: about 7 minutes and ~2.5 GB; the
compressive model: up to 13 minutes and ~5 GB).

``--validate`` instead simulates the default dataset (``brain2pix simulate``: 96 px, V1-V3 with
known pRFs), runs ``estimate-rf`` on it end to end (videos decoded, frames warped) and prints the
median centre error in pixels and the sigma error per ROI against the simulator's truth, for the
voxels above the R^2 threshold.
"""

import argparse
import os
import resource
import tempfile
import time

import numpy as np

from brain2pix_gluon.io.names import ROIS
from brain2pix_gluon.preprocessing.prf import FEATURES, fit_prf


def make_runs(folder, n_voxels, n_volumes, run_volumes, size=96, seed=0, channels=None):
    """Random drives (non-negative, as a contrast energy is; ``channels`` maps per volume for the
    multi-feature drive) and signals written as per-run .npy files, reopened as memory maps."""
    rng = np.random.default_rng(seed)
    drives, signals = [], []
    for r, start in enumerate(range(0, n_volumes, run_volumes)):
        n = min(run_volumes, n_volumes - start)
        d_path = os.path.join(folder, f"run{r}_drive.npy")
        s_path = os.path.join(folder, f"run{r}_signals.npy")
        shape = (n, size, size) if channels is None else (n, channels, size, size)
        np.save(d_path, rng.random(shape, dtype=np.float32))
        np.save(s_path, rng.standard_normal((n, n_voxels), dtype=np.float32))
        drives.append(np.load(d_path, mmap_mode="r"))
        signals.append(np.load(s_path, mmap_mode="r"))
    return drives, signals


def time_fit(n_voxels, n_volumes, run_volumes, config, tr=0.7):
    with tempfile.TemporaryDirectory() as folder:
        channels = len(FEATURES) if config.drive == "features" else None
        drives, signals = make_runs(folder, n_voxels, n_volumes, run_volumes, channels=channels)
        start, cpu = time.perf_counter(), time.process_time()
        fit_prf(drives, signals, tr, config, work_dir=folder)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        del drives, signals
    return seconds, cpu


def validate_on_simulator(sim_dir=None, overrides=()):
    from brain2pix_gluon.config import Config, apply_overrides
    from brain2pix_gluon.io.names import MASK_KEYS
    from brain2pix_gluon.preprocessing.estimate_rf import estimate_rf
    from brain2pix_gluon.data.simulation import simulate_dataset

    config = apply_overrides(Config(), list(overrides))
    with tempfile.TemporaryDirectory() as tmp:
        if sim_dir is None:
            sim_dir = os.path.join(tmp, "sim")
            simulate_dataset(sim_dir, config.simulation, config.data, show_progress=False)
        out = os.path.join(tmp, "rf")
        start = time.perf_counter()
        estimate_rf(sim_dir, out, config, show_progress=False)
        seconds = time.perf_counter() - start
        est = dict(np.load(os.path.join(out, "prf_estimates.npz")))
        truth = dict(np.load(os.path.join(sim_dir, "truth.npz")))
    size = config.data.image_size
    print(f"estimate-rf on the simulated dataset ({config.simulation.n_train_runs} runs x "
          f"{config.simulation.volumes_per_run} volumes, {size} px, drive {config.prf.drive}, "
          f"R^2 threshold {config.prf.r2_threshold}): {seconds:.1f} s")
    for roi in ROIS:
        keys = [k for k in MASK_KEYS if k.startswith(roi)]
        cat = lambda name, src, fmt: np.concatenate([src[fmt.format(k, name)] for k in keys])
        r2 = cat("r2", est, "{}_{}")
        kept = np.isfinite(r2) & (r2 >= config.prf.r2_threshold)
        # the simulator's true centres: <key>_x / <key>_y (earlier versions: _cols / _rows)
        old = "{}_x".format(keys[0]) not in truth
        err = np.hypot(cat("x", est, "{}_{}") - cat("cols" if old else "x", truth, "{}_{}"),
                       cat("y", est, "{}_{}") - cat("rows" if old else "y", truth, "{}_{}"))[kept] * size
        sig_true = cat("sigma", truth, "{}_{}")[kept]
        sig_err = np.abs(cat("sigma", est, "{}_{}")[kept] - sig_true) * size
        print(f"  {roi}: {kept.sum():4d}/{kept.size} voxels kept, median R^2 {np.median(r2):.2f}; "
              f"centre error median {np.median(err):.2f} px, 90th percentile "
              f"{np.percentile(err, 90):.2f} px; sigma error median {np.median(sig_err):.2f} px "
              f"(true sigma median {np.median(sig_true) * size:.2f} px)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxels", type=int, default=2000)
    parser.add_argument("--volumes", type=int, default=2000)
    parser.add_argument("--run-volumes", type=int, default=500)
    parser.add_argument("--full", action="store_true", help="also fit 10,000 x 10,000 once")
    parser.add_argument("--validate", action="store_true",
                        help="centre errors of estimate-rf on the simulated dataset instead")
    parser.add_argument("--sim-dir", help="with --validate: an existing simulated dataset")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="settings, e.g. prf.drive=contrast (with --validate: of every "
                             "section; else the prf section)")
    args = parser.parse_args()
    if args.validate:
        validate_on_simulator(args.sim_dir, args.overrides)
        return
    from brain2pix_gluon.config import Config, apply_overrides
    from brain2pix_gluon.preprocessing.prf import PRFGrid, is_compressive

    config = apply_overrides(Config(), list(args.overrides)).prf
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    model = (f"compressive (CSS), exponents {config.css_exponents}" if is_compressive(config)
             else f"linear multi-feature ({', '.join(FEATURES)})" if config.drive == "features"
             else "linear")
    print(f"pRF fit, drive {config.drive}: {model} model; 96 x 96 frames, runs of "
          f"{args.run_volumes} volumes, grid stride {config.grid_stride} px x {config.n_sigma} "
          f"sigmas ({int(np.prod(PRFGrid(96, config).shape))} candidates), chunks of "
          f"{config.chunk_voxels} voxels; OMP_NUM_THREADS={threads}, {os.cpu_count()} CPUs")
    small_v = max(args.voxels // 4, config.chunk_voxels)
    t_small, cpu_small = time_fit(small_v, args.volumes, args.run_volumes, config)
    t_large, cpu_large = time_fit(args.voxels, args.volumes, args.run_volumes, config)
    # the host may be shared: CPU seconds (all threads) say how much of the wall time was ours
    print(f"  {small_v:>6} voxels x {args.volumes} volumes: {t_small:7.1f} s wall, "
          f"{cpu_small:7.1f} s CPU")
    print(f"  {args.voxels:>6} voxels x {args.volumes} volumes: {t_large:7.1f} s wall, "
          f"{cpu_large:7.1f} s CPU; load average now {os.getloadavg()[0]:.1f}")
    # t = volumes * (a + b * voxels): a (variances), b (per voxel-volume)
    b = (t_large - t_small) / (args.voxels - small_v) / args.volumes
    a = max(t_small / args.volumes - b * small_v, 0.0)
    target_v = target_t = 10_000
    predicted = target_t * (a + b * target_v)
    print(f"  per voxel-volume {b * 1e6:.3f} us, per volume {a * 1e3:.2f} ms -> 10,000 voxels x "
          f"10,000 volumes predicted {predicted:.0f} s ({predicted / 60:.1f} min; goal <= 10 min)")
    if config.drive == "features":
        print(f"  (this extrapolation takes the folds to grow with the volumes, as leave-one-run-out "
              f"does; the multi-feature fit holds out at most 5 folds of runs, so at "
              f"{target_t // args.run_volumes} runs it does less: --full measures it)")
    b_cpu = (cpu_large - cpu_small) / (args.voxels - small_v) / args.volumes
    a_cpu = max(cpu_small / args.volumes - b_cpu * small_v, 0.0)
    cpu_pred = target_t * (a_cpu + b_cpu * target_v)
    print(f"  in CPU seconds: {cpu_pred:.0f} s for 10,000 x 10,000, i.e. {cpu_pred / 60:.1f} min of "
          f"one core; on an idle 2-core machine the wall time lies between {cpu_pred / 120:.1f} and "
          f"{cpu_pred / 60:.1f} min (BLAS on two threads)")
    if args.full:
        t_full, cpu_full = time_fit(target_v, target_t, args.run_volumes, config)
        print(f"  10,000 voxels x 10,000 volumes measured: {t_full:.0f} s wall "
              f"({t_full / 60:.1f} min), {cpu_full:.0f} s CPU; load average now "
              f"{os.getloadavg()[0]:.1f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak resident memory {peak:.0f} MB")


if __name__ == "__main__":
    main()
