"""Evaluation cost of N models on one test set, before and after caching the ground truth's features.

Prints its figures; run with ``python benchmarks/bench_evaluation.py`` (``make benchmark``).
"Before" evaluates every model with the cache off (the ground truth's AlexNet and C3D features
are recomputed for each model, as every evaluation did before the cache); "after" evaluates the
same models into an empty cache, so the first model computes and stores them and the others read
them. Goal: each model after the first costs at most 55 % of the first.

The feature networks have random weights (marked: this measures time, not quality) at the
evaluation's sizes (AlexNet 224, C3D 16 x 112 x 112); the frames are small and few so that the
whole benchmark takes a minute or two on two cores.
"""

import argparse
import os
import tempfile
import time

import brain2pix_gluon  # noqa: F401  first: loads a CUDA build's libraries (docs/gpu.md)
import mxnet as mx
import numpy as np

from brain2pix_gluon.config import EvalConfig
from brain2pix_gluon.evaluation.evaluate import evaluate
from brain2pix_gluon.evaluation.feature_cache import weights_sha256
from brain2pix_gluon.evaluation.features import feature_extractor
from brain2pix_gluon.evaluation.metrics import fisheye_valid_mask
from brain2pix_gluon.io.reconstructions import write_reconstructions

GOAL = 0.55


def make_files(folder, n_models, n_frames, size, seed=0):
    """One test set (smooth random frames with the fisheye's black corners) and noisy models."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    targets = ndimage.gaussian_filter(rng.random((n_frames, 3, size, size)), (0, 0, 2, 2))
    targets = (targets - targets.min()) / (targets.max() - targets.min())
    targets = (targets * fisheye_valid_mask(size)).astype(np.float32)
    samples = np.stack([np.zeros(n_frames, int), np.arange(n_frames), np.arange(n_frames) + 4,
                        np.arange(n_frames), np.arange(n_frames) + 4], axis=1)
    paths = []
    for k in range(n_models):
        recon = np.clip(targets + rng.normal(0, 0.1 * (k + 1), targets.shape), 0, 1)
        path = os.path.join(folder, f"model{k}", "recon", "reconstructions.h5")
        os.makedirs(os.path.dirname(path))
        paths.append(write_reconstructions(path, recon.astype(np.float32), targets, samples,
                                           ["clip_01"], {"model": f"model{k}"}))
    return paths


def timed_evaluations(paths, folder, cfg, extractor, tag):
    """CPU seconds (robust to other processes on a shared host) and wall seconds per model."""
    cpu, wall = [], []
    for k, path in enumerate(paths):
        start, start_cpu = time.perf_counter(), time.process_time()
        res = evaluate(path, os.path.join(folder, f"model{k}", f"eval_{tag}"), cfg,
                       show_progress=False, extractor=extractor)
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
        print(f"evaluation {tag:<6} model {k + 1}: {cpu[-1]:7.2f} s CPU {wall[-1]:7.2f} s wall  "
              f"(ground-truth features: {res['feature_cache']['ground_truth']})", flush=True)
    return np.array(cpu), np.array(wall)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=32, help="frame side in pixels")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    ctx = mx.cpu()
    extractor = feature_extractor(EvalConfig(feature_weights="random"), ctx)
    sources = extractor.sources
    start = time.perf_counter()
    weights_sha256(extractor)
    hash_time = time.perf_counter() - start
    print(f"evaluation: {args.models} models x {args.frames} frames of {args.size} px; feature "
          f"networks {sources['alexnet'].split(' (')[0]} weights (timing only); batch "
          f"{args.batch_size}; {os.environ.get('OMP_NUM_THREADS', 'default')} OMP threads")
    print(f"evaluation weights hash (once per extractor): {hash_time:.2f} s")
    with tempfile.TemporaryDirectory() as folder:
        paths = make_files(folder, args.models, args.frames, args.size)
        off = EvalConfig(batch_size=args.batch_size, feature_cache="off")
        on = EvalConfig(batch_size=args.batch_size, feature_cache=os.path.join(folder, "cache"))
        before, before_wall = timed_evaluations(paths, folder, off, extractor, "before")
        after, after_wall = timed_evaluations(paths, folder, on, extractor, "after")
    later = after[1:]
    ratio = later.max() / after[0] if len(later) else float("nan")
    print(f"evaluation before: {before.sum():7.2f} s CPU ({before_wall.sum():.2f} s wall) for "
          f"{args.models} models, {before.mean():.2f} s CPU each")
    print(f"evaluation after : {after.sum():7.2f} s CPU ({after_wall.sum():.2f} s wall) for "
          f"{args.models} models: first {after[0]:.2f} s, later {later.mean():.2f} s CPU each")
    print(f"evaluation later / first model (CPU, worst later model): {ratio:.0%} (goal <= "
          f"{GOAL:.0%}: {'met' if ratio <= GOAL else 'NOT met'}); later / uncached model "
          f"{later.max() / before.mean():.0%}; all {args.models} models {after.sum() / before.sum():.0%}"
          f" of before (the weights hash above is paid once per extractor)")


if __name__ == "__main__":
    main()
