"""What the parameter server (``train.kvstore=dist_sync``, ``brain2pix launch``) costs per iteration.

Prints, for the paper's FixedRF (U-Net ngf 64 on 15x96x96 inputs, PatchGAN ndf 64, VGG-19 feature
loss at 224 with random weights):

* the bytes each worker pushes and pulls per iteration, for G and D, counted from the trainable
  parameters' shapes (float32; every gradient is pushed once and its sum pulled once);
* the time per iteration (one D step + one G step on a fixed random batch) of one process without
  a parameter server, of one launched worker, and of two launched workers each with half of the
  batch, all on this machine; and the communication share: the time from a step's gradients
  being ready to their sums being back, measured with waits inserted before and after the
  exchange (without them part of it overlaps the backward pass);
* the time the bytes take on a link of ``--link-gbps`` at line rate, against ``--gpu-iteration-s``
  (the README's estimate for an RTX 2080 Ti at batch 8), for two machines.

Workers get ``OMP_NUM_THREADS`` = cores / workers, so that two workers do not share a core.

Usage: python benchmarks/bench_distributed.py [--iters 3] [--batch 8] [--link-gbps 10]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

RESULT = "RESULT "


def worker(batch, iters):
    """One process's (or launched worker's) timing; prints a RESULT line."""
    import brain2pix_gluon  # noqa: F401  first: loads a CUDA build's libraries
    import mxnet as mx
    import numpy as np
    from mxnet import gluon

    from brain2pix_gluon.config import Config
    from brain2pix_gluon.model_zoo import vgg_features
    from brain2pix_gluon.training import HistoryBuffer, update_discriminator, update_generator
    from brain2pix_gluon.training.builder import build_networks
    from brain2pix_gluon.training.distributed import in_launched_worker, join_workers

    config = Config()
    nets = build_networks(config, in_channels=15, ctx=[mx.cpu()])
    vgg = vgg_features("random", resize=224, seed=0)
    vgg.hybridize(static_alloc=True)
    opt = {"learning_rate": 2e-4, "beta1": 0.5}
    group = join_workers(config) if in_launched_worker() else None
    make = group.trainer if group else gluon.Trainer
    trainers = {name: make(nets[name].collect_params(), "adam", dict(opt))
                for name in ("net_g", "net_d")}
    comm = [0.0]
    if group:
        group.start(nets, {"batch": batch})
        exchange = group.sum_gradients

        def timed_exchange(params):
            mx.nd.waitall()             # the gradients are ready
            start = time.perf_counter()
            exchange(params)
            mx.nd.waitall()             # their sums are back
            comm[0] += time.perf_counter() - start

        group.sum_gradients = timed_exchange
    share = batch // (group.num_workers if group else 1)
    rng = np.random.default_rng(group.rank if group else 0)
    x = mx.nd.array(rng.random((share, 15, 96, 96), np.float32))
    y = mx.nd.array(rng.random((share, 3, 96, 96), np.float32))
    history = HistoryBuffer()
    times, comms = [], []
    for i in range(iters + 1):
        mx.nd.waitall()
        comm[0], start = 0.0, time.perf_counter()
        update_discriminator(nets["net_g"], nets["net_d"], trainers["net_d"], history, x, y,
                             sync=False)
        update_generator(nets["net_g"], nets["net_d"], trainers["net_g"], vgg, x, y,
                         config.loss, sync=False)
        mx.nd.waitall()
        if i:                           # the first is a warm-up
            times.append(time.perf_counter() - start)
            comms.append(comm[0])
    if group:
        group.finished()
    counts = {name: sum(int(np.prod(p.shape)) for p in nets[name].collect_params().values()
                        if p.grad_req != "null") for name in ("net_g", "net_d")}
    print(RESULT + json.dumps({"rank": group.rank if group else 0, "batch": share,
                               "iteration_s": statistics.median(times),
                               "communication_s": statistics.median(comms),
                               "parameters": counts}), flush=True)


def _results(text):
    return [json.loads(line.split(RESULT, 1)[1]) for line in text.splitlines() if RESULT in line]


def measure(workers, batch, iters):
    """Run ``worker`` as one process (workers=0) or launched on ``workers`` workers."""
    here = os.path.abspath(__file__)
    argv = [sys.executable, here, "--worker", "--batch", str(batch), "--iters", str(iters)]
    cores = os.cpu_count() or 1
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, cores // max(workers, 1))))
    if workers == 0:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    else:
        code = [sys.executable, "-c", "import sys; from brain2pix_gluon.launch import launch; "
                f"sys.exit(launch(sys.argv[1:], {workers}, 1, grace=30))", *argv]
        proc = subprocess.run(code, env=env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"launch of {workers} worker(s) failed:\n{proc.stdout}")
        out = proc.stdout
    return _results(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=3, help="timed iterations after a warm-up")
    parser.add_argument("--batch", type=int, default=8, help="the batch over all workers")
    parser.add_argument("--link-gbps", type=float, default=10.0)
    parser.add_argument("--gpu-iteration-s", type=float, default=0.15,
                        help="one GPU's time per iteration at --batch (README: RTX 2080 Ti, "
                        "estimated)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.batch, args.iters)
    load = os.getloadavg()[0]
    runs = {"one process, no parameter server": measure(0, args.batch, args.iters),
            "1 worker  (dist_sync, 1 server)": measure(1, args.batch, args.iters),
            "2 workers (dist_sync, 1 server)": measure(2, args.batch, args.iters)}
    counts = runs["one process, no parameter server"][0]["parameters"]
    mb = {name: 4 * n / 1e6 for name, n in counts.items()}
    total = sum(mb.values())
    print(f"brain2pix_gluon parameter-server benchmark on CPU ({os.cpu_count()} cores, load "
          f"average {load:.1f} before, {os.getloadavg()[0]:.1f} after); FixedRF as in the paper, "
          f"batch {args.batch} over all workers, median of {args.iters} iterations after 1 "
          f"warm-up")
    print(f"  per worker and iteration: G pushes {mb['net_g']:.1f} MB and pulls "
          f"{mb['net_g']:.1f} MB ({counts['net_g']:,} float32 parameters), D pushes "
          f"{mb['net_d']:.1f} MB and pulls {mb['net_d']:.1f} MB ({counts['net_d']:,}); "
          f"{2 * total:.1f} MB in all")
    for name, results in runs.items():
        slowest = max(results, key=lambda r: r["iteration_s"])
        line = f"  {name}: {slowest['iteration_s']:6.2f} s/iteration (batch {slowest['batch']} " \
               f"per worker)"
        if "dist_sync" in name:
            comm = max(r["communication_s"] for r in results)
            line += f", communication {comm:5.2f} s = {100 * comm / slowest['iteration_s']:4.1f} %" \
                    f" ({2 * total / comm / 1e3:.2f} GB/s through the server)"
        print(line)
    wire = total / (args.link_gbps / 8 * 1e3)       # MB / (GB/s) -> s
    print(f"  two machines on {args.link_gbps:g} Gb/s: each pushes and pulls {total:.1f} MB per "
          f"iteration over the link whatever the servers' placement (one per machine: half to "
          f"the other's server, half of the sums back, and the same for the other worker), "
          f"{wire:.3f} s at line rate per direction; against {args.gpu_iteration_s:g} s of GPU "
          f"work per iteration at batch {args.batch}: {args.gpu_iteration_s + wire:.3f} s for "
          f"{2 * args.batch} samples on two GPUs if nothing overlaps "
          f"({2 * args.gpu_iteration_s / (args.gpu_iteration_s + wire):.2f}x one GPU), "
          f"{args.gpu_iteration_s / 2 + wire:.3f} s for {args.batch} "
          f"({args.gpu_iteration_s / (args.gpu_iteration_s / 2 + wire):.2f}x)")


if __name__ == "__main__":
    main()
