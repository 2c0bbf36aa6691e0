"""Preprocessing speed: fisheye warp, RF rendering and prepare end to end.

Prints its figures; run with ``python benchmarks/bench_preprocessing.py`` (``make benchmark``).
Ratios are measured within one run, on the same machine, to be robust to a shared, noisy host.
"""

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time

import numpy as np

from brain2pix_gluon.config import Config, apply_overrides
from brain2pix_gluon.io.raw import discover_runs
from brain2pix_gluon.io.video import read_video
from brain2pix_gluon.preprocessing.prepare import prepare_dataset
from brain2pix_gluon.preprocessing.receptive_fields import RFMapper, render_dense_reference
from brain2pix_gluon.preprocessing.retina import FisheyeWarp, fisheye_warp_reference
from brain2pix_gluon.data.simulation import simulate_dataset


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def bench_warp(n_ref=40, n_fast=2000):
    rng = np.random.default_rng(0)
    frames = rng.random((n_fast, 96, 96, 3)).astype(np.float32)
    t_ref, ref = best_of(lambda: np.stack([fisheye_warp_reference(f) for f in frames[:n_ref]]), 1)
    warp = FisheyeWarp(96)          # map computed once, as in prepare
    t_fast, fast = best_of(lambda: warp(frames))
    per_ref, per_fast = t_ref / n_ref, t_fast / n_fast
    diff = float(np.abs(fast[:n_ref] - ref).max())
    print(f"warp      reference (refit per frame): {per_ref * 1e3:8.3f} ms/frame  ({n_ref} frames)")
    print(f"warp      precomputed sparse map     : {per_fast * 1e3:8.3f} ms/frame  ({n_fast} frames)")
    print(f"warp      speed-up {per_ref / per_fast:8.1f}x   max |difference| {diff:.2e}")


def bench_render(n_voxels=3000, n_volumes=300):
    rng = np.random.default_rng(1)
    cols, rows = rng.uniform(-0.5, 0.5, (2, n_voxels))
    mapper = RFMapper(cols, rows, 96)
    voxels = rng.normal(size=(n_volumes, n_voxels)).astype(np.float32)
    t_loop, loop = best_of(lambda: render_dense_reference(voxels[:30], mapper.map_rows,
                                                          mapper.map_cols, 96), 1)
    t_blas, blas = best_of(lambda: render_dense_reference(voxels, mapper.map_rows, mapper.map_cols,
                                                          96, per_volume=False))
    t_sparse, sparse_out = best_of(lambda: mapper.render(voxels))
    per = {"loop": t_loop / 30, "blas": t_blas / n_volumes, "sparse": t_sparse / n_volumes}
    print(f"render    {n_voxels} voxels, {n_volumes} volumes")
    print(f"render    reference one-hot loop     : {per['loop'] * 1e3:8.3f} ms/volume")
    print(f"render    dense one-hot matrix (BLAS): {per['blas'] * 1e3:8.3f} ms/volume")
    print(f"render    sparse operator            : {per['sparse'] * 1e3:8.3f} ms/volume")
    print(f"render    speed-up vs reference loop {per['loop'] / per['sparse']:8.1f}x, vs dense BLAS "
          f"{per['blas'] / per['sparse']:6.1f}x; max |difference| "
          f"{float(np.abs(sparse_out[:30] - loop).max()):.2e} (loop), "
          f"{float(np.abs(sparse_out - blas).max()):.2e} (BLAS)")


def _prepare_child(raw, out, queue):
    start = time.perf_counter()
    prepare_dataset(raw, out, Config(), force=True, show_progress=False)
    queue.put(time.perf_counter() - start)


def bench_prepare(workdir, overrides):
    config = apply_overrides(Config(), overrides)
    raw = os.path.join(workdir, "raw")
    simulate_dataset(raw, config.simulation, config.data, show_progress=False)
    n_frames = 0
    start = time.perf_counter()
    for split in ("train", "test"):
        for run in discover_runs(raw, split):
            n_frames += len(read_video(run["video"], 96, 0.7))
    decode = time.perf_counter() - start
    queue = mp.get_context("fork").Queue()
    child = mp.get_context("fork").Process(target=_prepare_child,
                                           args=(raw, os.path.join(workdir, "prepared"), queue))
    child.start()
    child.join()
    total = queue.get()
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    sizes = sum(os.path.getsize(os.path.join(workdir, "prepared", f)) for f in ("train.h5", "test.h5"))
    print(f"prepare   {n_frames} frames (simulated dataset: {config.simulation.n_train_runs} runs x "
          f"{config.simulation.volumes_per_run} + {config.simulation.n_test_clips} clips x "
          f"{config.simulation.n_repetitions} repetitions)")
    print(f"prepare   end to end {total:6.2f} s = {n_frames / total:7.0f} frames/s; video decoding "
          f"alone {decode:5.2f} s; excluding it {n_frames / max(total - decode, 1e-9):7.0f} frames/s")
    print(f"prepare   peak memory of the prepare process {peak_mb:7.0f} MB; output "
          f"{sizes / 1e6:6.1f} MB ({sizes / n_frames * 1000 / 1e6:5.1f} MB per 1,000 frames)")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("overrides", nargs="*", help="simulation.* overrides for the prepare run")
    args = parser.parse_args()
    print(f"brain2pix_gluon preprocessing benchmark ({os.cpu_count()} CPUs)")
    bench_warp()
    bench_render()
    with tempfile.TemporaryDirectory() as tmp:
        bench_prepare(tmp, args.overrides)


if __name__ == "__main__":
    main()
