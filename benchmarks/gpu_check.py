"""One prepared GPU check: does this package run, agree with the CPU and keep a GPU busy?

    python benchmarks/gpu_check.py [--gpu 0] [--iters 10] [--out gpu_check.json]
    python benchmarks/gpu_check.py --dry-run        # everything on the CPU at a tiny size

In order, it prints:

0. whether this MXNet reaches the GPU at all (a CUDA 11.2 build such as mxnet-cu112 carries no
   kernels for GPUs newer than it, e.g. Hopper (sm_90): they run only if the driver JIT-compiles
   the embedded PTX; if that fails the check says so and stops);
1. the first iteration's losses (L_D, L_G and its terms) on the GPU against the CPU from identical
   weights and data, with the tolerance (rtol 1e-3: cuDNN picks other algorithms, and Ampere or
   newer GPUs may use TF32 convolutions; set NVIDIA_TF32_OVERRIDE=0 for plain float32);
2. seconds per iteration in float32 and with AMP (dynamic loss scaling) at batch 8 (FixedRF) and
   12 (LearnedRF), each in its own process, and the GPU memory each process holds (MXNet's pool,
   close to the peak);
3. DataLoader throughput (samples/s, ``train.num_workers`` workers) against what the GPU consumes;
4. one quick-profile epoch end to end (``brain2pix train --profile quick``);
5. evaluation (AlexNet + C3D features, metrics) in frames/s;
6. an RTX 2080 Ti epoch time, extrapolated from the measured seconds per iteration by the ratio of
   the two GPUs' peak throughputs (labelled as an extrapolation).

The data is the embedded simulated dataset at the paper's size (96 px, 15 RFSimage channels);
feature networks use random weights (these machines cannot download the pretrained ones; the
arithmetic is the same). ``--dry-run`` runs every step on the CPU with a tiny configuration and
must finish in under 2 minutes on 2 cores (the test suite runs it), so CI exercises this script.
"""

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

import brain2pix_gluon  # noqa: F401  first: loads a CUDA build's libraries (docs/gpu.md)
import mxnet as mx
import numpy as np

# paper-size iterations per epoch: ~119,000 training samples (README, "Reproducing the paper")
PAPER_TRAIN_SAMPLES = 119_000
# peak dense throughputs, TFLOP/s (vendor data sheets): float32 (no tensor cores), and float16
# tensor cores with float32 accumulation (what AMP's float16 convolutions use)
GPU_PEAKS = {
    "2080 Ti": {"fp32": 13.4, "fp16": 53.8, "name": "GeForce RTX 2080 Ti"},
    "H200": {"fp32": 67.0, "fp16": 989.0, "name": "H200 SXM"},
    "H100": {"fp32": 67.0, "fp16": 989.0, "name": "H100 SXM"},
    "A100": {"fp32": 19.5, "fp16": 312.0, "name": "A100"},
    "V100": {"fp32": 15.7, "fp16": 125.0, "name": "V100 SXM2"},
}
TINY = ["data.image_size=32", "simulation.n_train_runs=2", "simulation.volumes_per_run=40",
        "simulation.n_test_clips=1", "simulation.volumes_per_clip=30",
        "simulation.n_repetitions=2", "simulation.n_voxels=150,120,90",
        "simulation.n_nonvisual_voxels=20", "model.ngf=16", "model.ndf=8",
        "loss.feature_resize=32", "evaluation.max_frames=4"]
RTOL = 1e-3


def base_config(dry_run, *extra):
    from brain2pix_gluon.config import Config, apply_overrides

    common = ["loss.feature_weights=random", "evaluation.feature_weights=random",
              "train.grid_samples=2"]
    return apply_overrides(Config(), common + (TINY if dry_run else []) + list(extra))


def device_probe(gpu):
    """(ok, message): can this MXNet run a convolution on ``gpu(gpu)``?"""
    n = mx.context.num_gpus()
    if n <= gpu:
        return False, (f"MXNet {mx.__version__} sees {n} GPU(s), so gpu({gpu}) is unreachable: "
                       f"install mxnet-cu112 (pip install -e .[cu112]) on a machine with an NVIDIA "
                       f"driver for CUDA >= 11.2")
    try:
        ctx = mx.gpu(gpu)
        x = mx.nd.ones((1, 3, 8, 8), ctx=ctx)
        w = mx.nd.ones((4, 3, 3, 3), ctx=ctx)
        y = mx.nd.Convolution(x, w, kernel=(3, 3), num_filter=4, no_bias=True, pad=(1, 1))
        value = float(y[0, 0, 4, 4].asscalar())
    except mx.base.MXNetError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, (f"MXNet {mx.__version__} cannot run a convolution on gpu({gpu}): {first}. "
                       f"A CUDA 11.2 build has no kernels for GPUs newer than Ampere (e.g. Hopper, "
                       f"sm_90) and relies on the driver JIT-compiling its PTX, which this "
                       f"build/driver pair did not do")
    if value != 27.0:
        return False, f"gpu({gpu}) computed a 3x3x3 convolution of ones as {value}, expected 27"
    free, total = mx.context.gpu_memory_info(gpu)
    return True, (f"MXNet {mx.__version__} runs cuDNN convolutions on gpu({gpu}) "
                  f"({total / 2 ** 30:.0f} GiB, {free / 2 ** 30:.0f} GiB free)")


def gpu_name(gpu):
    try:
        import subprocess

        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader",
                              f"--id={gpu}"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or "unknown GPU"
    except (OSError, ValueError, subprocess.SubprocessError):
        return "unknown GPU"


def make_trainer(config, data, run_dir, ctx):
    from brain2pix_gluon.training.trainer import Trainer

    return Trainer(config, os.path.join(data, "train.h5"), run_dir,
                   os.path.join(data, "test.h5"), ctx=[ctx], show_progress=False)


def first_batch(trainer, batch_size):
    from brain2pix_gluon.data.dataset import EpochSampler

    loader = trainer._loader(trainer.train_set, EpochSampler(len(trainer.train_set), 0, 0),
                             batch_size, "discard")
    return next(iter(loader))


def first_iteration(config, data, device, workdir):
    """First-iteration losses on the CPU and on ``device`` from identical weights and data."""
    cpu = make_trainer(config, data, os.path.join(workdir, "first_cpu"), mx.cpu())
    batch = first_batch(cpu, config.train.batch_size)
    dev = make_trainer(config, data, os.path.join(workdir, "first_dev"), device)
    # MXNet's generators differ between devices: copy the CPU's initial weights over (a first
    # forward completes VGG's deferred initialisation)
    size = config.data.image_size
    for trainer, ctx in ((cpu, mx.cpu()), (dev, device)):
        if trainer.feature_net is not None:
            trainer.feature_net(mx.nd.zeros((1, 3, size, size), ctx=ctx))
    for name, net in list(cpu.nets.items()) + [("feature_net", cpu.feature_net)]:
        if net is None:
            continue
        path = os.path.join(workdir, f"{name}.params")
        net.save_parameters(path)
        (dev.feature_net if name == "feature_net" else dev.nets[name]).load_parameters(
            path, ctx=device)
    losses_cpu = cpu.train_step(batch)
    losses_dev = dev.train_step(batch)
    return {k: float(v) for k, v in losses_cpu.items()}, {k: float(v) for k, v in losses_dev.items()}


def _timing_case(args, queue):
    """Child process: seconds per iteration of one (variant, precision, batch) case."""
    dry_run, data, variant, amp, batch, iters, gpu, workdir = args
    try:
        ctx = mx.cpu() if dry_run else mx.gpu(gpu)
        config = base_config(dry_run, f"model.variant={variant}", f"train.batch_size={batch}",
                             f"train.amp={str(amp).lower()}")
        trainer = make_trainer(config, data, os.path.join(workdir, f"time_{variant}_{amp}"), ctx)
        batch_arrays = first_batch(trainer, batch)
        trainer.train_step(batch_arrays)            # warm-up: graph building, cuDNN autotune
        mx.nd.waitall()
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            trainer.train_step(batch_arrays)
            mx.nd.waitall()
            times.append(time.perf_counter() - start)
        memory = None
        if not dry_run:
            free, total = mx.context.gpu_memory_info(gpu)
            memory = (total - free) / 2 ** 20
        queue.put({"s_per_iter": statistics.median(times), "gpu_mb": memory})
    except Exception as exc:                          # reported, not hidden: the row says why
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def timing(dry_run, data, variant, amp, batch, iters, gpu, workdir):
    context = mp.get_context("spawn")
    queue = context.Queue()
    proc = context.Process(target=_timing_case,
                           args=((dry_run, data, variant, amp, batch, iters, gpu, workdir), queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def loader_throughput(config, data, workdir, n_batches):
    """Samples/s the training DataLoader delivers with ``train.num_workers`` workers."""
    trainer = make_trainer(config, data, os.path.join(workdir, "loader"), mx.cpu())
    from brain2pix_gluon.data.dataset import EpochSampler

    loader = trainer._loader(trainer.train_set, EpochSampler(len(trainer.train_set), 0, 0),
                             config.train.batch_size, "discard")
    count, start = 0, None
    for k, batch in enumerate(loader):
        if k == 0:
            start = time.perf_counter()           # workers started and warm
            continue
        count += batch[0].shape[0]
        if k >= n_batches:
            break
    return count / (time.perf_counter() - start) if count else float("nan")


def quick_epoch_and_evaluation(config, data, device, workdir):
    """One quick-profile epoch end to end, then reconstruct and evaluate the test set."""
    from brain2pix_gluon.evaluation.evaluate import evaluate
    from brain2pix_gluon.training.inference import reconstruct

    run_dir = os.path.join(workdir, "quick")
    trainer = make_trainer(config, data, run_dir, device)
    start = time.perf_counter()
    trainer.fit(epochs=1)
    epoch_s = time.perf_counter() - start
    start = time.perf_counter()
    paths = reconstruct(run_dir, data, os.path.join(workdir, "recon"), ctx=device,
                        show_progress=False)
    recon_s = time.perf_counter() - start
    start = time.perf_counter()
    results = evaluate(paths["h5"], os.path.join(workdir, "eval"), config.evaluation, ctx=device,
                       show_progress=False)
    eval_s = time.perf_counter() - start
    return {"epoch_s": epoch_s, "iterations": trainer.steps_per_epoch(),
            "reconstruct_s": recon_s, "eval_frames": results["n_frames"],
            "eval_frames_per_s": results["n_frames"] / eval_s}


def extrapolate(s_per_iter, precision, batch, measured_gpu):
    """RTX 2080 Ti seconds per epoch from a measured s/iteration, scaled by peak throughput."""
    key = next((k for k in GPU_PEAKS if k.lower() in measured_gpu.lower()), None)
    if key is None:
        return None, f"no peak throughput known for {measured_gpu!r}: no extrapolation"
    factor = GPU_PEAKS[key][precision] / GPU_PEAKS["2080 Ti"][precision]
    epoch = s_per_iter * factor * (PAPER_TRAIN_SAMPLES // batch)
    how = (f"EXTRAPOLATED: {s_per_iter * 1e3:.1f} ms/iteration x ({GPU_PEAKS[key]['name']} "
           f"{GPU_PEAKS[key][precision]} / RTX 2080 Ti {GPU_PEAKS['2080 Ti'][precision]} TFLOP/s "
           f"{precision} peak = {factor:.2f}) x {PAPER_TRAIN_SAMPLES // batch} iterations; "
           f"assumes the iteration is compute-bound at the same fraction of peak on both")
    return epoch, how


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="run every step on the CPU at a tiny size (CI)")
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per case")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader workers (train.num_workers)")
    parser.add_argument("--data", help="prepared directory (default: the embedded simulated "
                        "dataset, made on first use)")
    parser.add_argument("--out", default="gpu_check.json", help="JSON with every figure")
    args = parser.parse_args(argv)
    from brain2pix_gluon.data.embedded import simulated_dataset

    report = {"dry_run": args.dry_run, "mxnet": mx.__version__}
    iters = 1 if args.dry_run else args.iters
    if args.dry_run:
        device, where = mx.cpu(), "CPU (dry run: tiny sizes, figures mean nothing)"
    else:
        ok, message = device_probe(args.gpu)
        print(f"[0] device: {message}")
        report["device_check"] = message
        if not ok:
            report["status"] = "GPU unreachable"
            with open(args.out, "w") as handle:
                json.dump(report, handle, indent=2)
            return 1
        device, where = mx.gpu(args.gpu), gpu_name(args.gpu)
    report["device"] = where
    print(f"brain2pix_gluon GPU check on {where}")
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as workdir:
        config = base_config(args.dry_run)
        data = args.data or simulated_dataset(config, os.path.join(workdir, "data")
                                              if args.dry_run else None, show_progress=False)

        cpu, dev = first_iteration(config, data, device, workdir)
        worst = max(abs(dev[k] - cpu[k]) / max(abs(cpu[k]), 1e-12) for k in cpu)
        agree = set(cpu) == set(dev) and worst <= RTOL
        print(f"[1] first-iteration losses, CPU vs device (rtol {RTOL:g}): "
              + ", ".join(f"{k} {cpu[k]:.6f}/{dev[k]:.6f}" for k in sorted(cpu))
              + f"; worst relative difference {worst:.2e} -> {'AGREE' if agree else 'DIFFER'}")
        report["first_iteration"] = {"cpu": cpu, "device": dev, "rtol": RTOL,
                                     "worst_relative_difference": worst, "agree": agree}

        cases = []
        for variant, batch in (("fixed_rf", 8), ("learned_rf", 12)):
            for amp in (False, True):
                size = 2 if args.dry_run else batch
                label = f"{variant} batch {size} {'AMP' if amp else 'fp32'}"
                if amp and args.dry_run:
                    print(f"[2] {label:<28} not run: AMP needs a GPU")
                    continue
                r = timing(args.dry_run, data, variant, amp, size, iters, args.gpu, workdir)
                r.update(variant=variant, batch=size, precision="fp16" if amp else "fp32")
                cases.append(r)
                if "error" in r:
                    print(f"[2] {label:<28} FAILED: {r['error']}")
                    continue
                mem = f", GPU memory held {r['gpu_mb']:.0f} MB" if r["gpu_mb"] is not None else ""
                print(f"[2] {label:<28} {r['s_per_iter'] * 1e3:9.1f} ms/iteration "
                      f"({size / r['s_per_iter']:.0f} samples/s){mem}")
        report["timing"] = cases

        loader_cfg = base_config(args.dry_run, f"train.num_workers={args.workers}",
                                 "train.batch_size=8")
        rate = loader_throughput(loader_cfg, data, workdir, 3 if args.dry_run else 50)
        fastest = min((c["s_per_iter"] / c["batch"] for c in cases if "s_per_iter" in c),
                      default=None)
        need = 1 / fastest if fastest else float("nan")
        print(f"[3] DataLoader ({args.workers} workers): {rate:.0f} samples/s; the fastest case "
              f"above consumes {need:.0f} samples/s -> "
              f"{'keeps up' if rate >= need else 'DATA LOADING IS THE BOTTLENECK'}")
        report["loader"] = {"workers": args.workers, "samples_per_s": rate,
                            "consumed_per_s": need}

        from brain2pix_gluon.experiments.profiles import apply_profile

        quick = apply_profile(config, "quick")
        if args.dry_run:
            from brain2pix_gluon.config import apply_overrides

            quick = apply_overrides(quick, ["train.max_steps_per_epoch=2", "train.batch_size=2",
                                            "loss.feature_resize=32", "evaluation.max_frames=4"])
        q = quick_epoch_and_evaluation(quick, data, device, workdir)
        print(f"[4] quick-profile epoch end to end ({q['iterations']} iterations, with test "
              f"losses, grid, checkpoint): {q['epoch_s']:.1f} s; reconstruction of the test set "
              f"{q['reconstruct_s']:.1f} s")
        print(f"[5] evaluation (AlexNet + C3D features, 12 metrics, t-tests): "
              f"{q['eval_frames_per_s']:.1f} frames/s over {q['eval_frames']} frames")
        report["quick"] = q

        report["extrapolation"] = []
        from bench_training import iteration_flops

        for c in cases:
            if "s_per_iter" not in c or args.dry_run:
                continue
            flops = iteration_flops(c["batch"])[0]     # convolutions; LearnedRF's dense not counted
            achieved = flops / c["s_per_iter"] / 1e12
            key = next((k for k in GPU_PEAKS if k.lower() in where.lower()), None)
            share = f" = {100 * achieved / GPU_PEAKS[key][c['precision']]:.0f} % of peak" \
                if key else ""
            print(f"[6] {c['variant']} batch {c['batch']} {c['precision']}: {flops / 1e9:.0f} "
                  f"GFLOP/iteration at {achieved:.1f} TFLOP/s{share} (a low share means the GPU "
                  f"waits on launches and the extrapolation below is pessimistic)")
            epoch, how = extrapolate(c["s_per_iter"], c["precision"], c["batch"], where)
            report["extrapolation"].append({"case": c, "epoch_s": epoch, "how": how,
                                            "tflops_achieved": achieved})
            shown = f"{epoch / 3600:.2f} h per epoch" if epoch else "n/a"
            print(f"[6] RTX 2080 Ti, {c['variant']} batch {c['batch']} {c['precision']}: "
                  f"{shown} ({how})")
        if args.dry_run:
            print("[6] RTX 2080 Ti extrapolation: not made in a dry run")
    report["status"] = "complete"
    with open(args.out, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"figures written to {args.out}")
    return 0 if report["first_iteration"]["agree"] and not any("error" in c for c in cases) \
        else 1


if __name__ == "__main__":
    sys.exit(main())
