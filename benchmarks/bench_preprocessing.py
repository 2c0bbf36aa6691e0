"""Preprocessing speed: fisheye warp, RF rendering and prepare end to end.

Prints its figures; run with ``python benchmarks/bench_preprocessing.py`` (``make benchmark``).
Ratios are measured within one run, on the same machine, to be robust to a shared, noisy host.
"""

import argparse
import hashlib
import multiprocessing as mp
import os
import resource
import tempfile
import time

import numpy as np

from brain2pix_gluon.config import Config, apply_overrides
from brain2pix_gluon.io.prepared import array_checksums
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


def _prepare_child(raw, out, config, pipeline, queue):
    start = time.perf_counter()
    prepare_dataset(raw, out, config, force=True, show_progress=False, pipeline=pipeline)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    queue.put((time.perf_counter() - start, usage.ru_maxrss / 1024,
               usage.ru_utime + usage.ru_stime))


def _timed_prepare(raw, out, config, pipeline):
    """Run prepare in a fresh process: (seconds, peak memory in MB, CPU seconds of the process).

    The CPU seconds leave out ffmpeg (a child process of the prepare process): they are the work
    of everything but video decoding, whatever the load of the host."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_prepare_child, args=(raw, out, config, pipeline, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def bench_prepare(workdir, overrides):
    config = apply_overrides(Config(), overrides)
    raw = os.path.join(workdir, "raw")
    simulate_dataset(raw, config.simulation, config.data, show_progress=False)
    data = config.data

    def decode_all():
        start, n = time.perf_counter(), 0
        for split in ("train", "test"):
            for run in discover_runs(raw, split):
                n += len(read_video(run["video"], data.image_size, data.tr, data.video_backend,
                                    data.video_aspect, data.reencode))
        return n, time.perf_counter() - start

    # decoding alone is timed before and after the two prepares (a shared host's load drifts)
    n_frames, decode_before = decode_all()
    fast_dir, ref_dir = os.path.join(workdir, "prepared"), os.path.join(workdir, "reference")
    total, peak_mb, cpu = _timed_prepare(raw, fast_dir, config, pipeline=True)
    total_ref, _, cpu_ref = _timed_prepare(raw, ref_dir, config, pipeline=False)
    decode = (decode_before + decode_all()[1]) / 2
    sizes = sum(os.path.getsize(os.path.join(fast_dir, f)) for f in ("train.h5", "test.h5"))
    print(f"prepare   {n_frames} frames (simulated dataset: {config.simulation.n_train_runs} runs x "
          f"{config.simulation.volumes_per_run} + {config.simulation.n_test_clips} clips x "
          f"{config.simulation.n_repetitions} repetitions); compression {data.compression}")
    print(f"prepare   end to end {total:6.2f} s = {n_frames / total:7.0f} frames/s; video decoding "
          f"alone {decode:5.2f} s (mean of {decode_before:5.2f} s before, the other after)")
    print(f"prepare   one stage after the other (pipeline=False) {total_ref:6.2f} s; excluding "
          f"decoding {n_frames / max(total_ref - decode, 1e-9):7.0f} frames/s")
    print(f"prepare   {n_frames / max(total - decode, 1e-9):7.0f} frames/s excluding decoding "
          f"(goal >= 2,000): frames / (end to end - decoding alone); the pipeline decodes the "
          f"next run while it works on the current one")
    print(f"prepare   CPU time of the prepare process (all but ffmpeg: reading, warp, rendering, "
          f"HDF5): {cpu:5.2f} s = {cpu / n_frames * 1e3:5.3f} ms/frame = "
          f"{n_frames / cpu:5.0f} frames/s of one core (pipeline=False: {cpu_ref:5.2f} s)")
    print(f"prepare   peak memory of the prepare process {peak_mb:7.0f} MB; output "
          f"{sizes / 1e6:6.1f} MB ({sizes / n_frames * 1000 / 1e6:5.1f} MB per 1,000 frames)")
    n_same = n_all = 0
    digest = hashlib.sha256()
    for split in ("train", "test"):
        fast = array_checksums(os.path.join(fast_dir, f"{split}.h5"))
        ref = array_checksums(os.path.join(ref_dir, f"{split}.h5"))
        n_all += len(ref)
        n_same += sum(fast.get(key) == value for key, value in ref.items())
        n_all += len(set(fast) - set(ref))
        for key in sorted(fast):
            digest.update(f"{split}/{key}={fast[key]}".encode())
    verdict = "identical" if n_same == n_all else "DIFFERENT"
    print(f"prepare   array checksums (sha256 of every dataset's array): {n_same}/{n_all} "
          f"{verdict} to the reference path (pipeline=False); digest of all "
          f"{digest.hexdigest()[:16]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("overrides", nargs="*",
                        help="section.key=value overrides for the prepare run")
    args = parser.parse_args()
    print(f"brain2pix_gluon preprocessing benchmark ({os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start)")
    bench_warp()
    bench_render()
    with tempfile.TemporaryDirectory() as tmp:
        bench_prepare(tmp, args.overrides)
    print(f"load average {os.getloadavg()[0]:.1f} at the end (a shared host: compare figures "
          f"within one run)")


if __name__ == "__main__":
    main()
