"""Training-iteration speed: ours vs the same math executed the way the reference code runs it.

One iteration = one discriminator step + one generator step, batch 8, 15x96x96 inputs, VGG-19
features at 224x224 (random weights: these machines cannot download the pretrained ones; the
arithmetic is the same). "plain" runs every network imperatively (no hybridize), computes the
target's VGG features under autograd recording and keeps VGG's weights trainable (gradients are
computed, never applied), as the reference does. Both start from identical weights, so their
first-iteration losses must agree. Each variant runs in its own process to measure its peak memory.
"ours" also leaves the loss values on the device until the iteration's end (``sync=False``), as
the trainer does between log lines.

Also prints the arithmetic of one iteration (multiply-adds of every convolution, counted from the
layers' shapes; a backward pass costs one forward for the input gradient and one for the weight
gradient), the machine's float32 throughput on the convolution that dominates an iteration (3x3,
256->256 through oneDNN; nd.dot's OpenBLAS throughput is printed beside it), how close each
variant comes to it, and reconstruction throughput (generator inference, frames/s).

Usage: python benchmarks/bench_training.py [--iters 3] [--gpu]
"""

import argparse
import multiprocessing as mp
import resource
import statistics
import time

import brain2pix_gluon  # noqa: F401  first: loads a CUDA build's libraries (docs/gpu.md)
import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from brain2pix_gluon.config import LossConfig
from brain2pix_gluon.model_zoo import get_model, initialize_paper, vgg_features
from brain2pix_gluon.training import HistoryBuffer, update_discriminator, update_generator
from brain2pix_gluon.training.losses import l1_loss, sigmoid_bce


def build(ctx, optimized):
    mx.random.seed(0)
    g = initialize_paper(get_model("unet_generator", in_channels=15), ctx=ctx)
    d = initialize_paper(get_model("patch_discriminator", in_channels=18), ctx=ctx)
    vgg = vgg_features("random", resize=224, ctx=ctx, seed=0)
    if optimized:
        for net in (g, d, vgg):
            net.hybridize(static_alloc=True, static_shape=True)
    else:
        vgg.collect_params().setattr("grad_req", "write")   # the reference keeps VGG trainable
    opt = {"learning_rate": 2e-4, "beta1": 0.5}
    return g, d, vgg, gluon.Trainer(g.collect_params(), "adam", opt), \
        gluon.Trainer(d.collect_params(), "adam", opt)


def plain_iteration(g, d, vgg, tg, td, history, x, y, cfg):
    fake = g(x)
    pair = history.query(mx.nd.concat(x, fake, dim=1))
    with autograd.record():
        loss_d = 0.5 * (sigmoid_bce(d(pair), 0.0) + sigmoid_bce(d(mx.nd.concat(x, y, dim=1)), 1.0))
    loss_d.backward()
    td.step(1)
    with autograd.record():
        fake = g(x)
        adv = sigmoid_bce(d(mx.nd.concat(x, fake, dim=1)), 1.0)
        feat = mx.nd.mean(mx.nd.abs(vgg(fake) - vgg(y)))       # target features under recording
        pix = l1_loss(fake, y)
        loss_g = cfg.adversarial_weight * adv + cfg.feature_weight * feat + cfg.pixel_weight * pix
    loss_g.backward()
    tg.step(1)
    return float(loss_d.asscalar()), float(loss_g.asscalar())


def ours_iteration(g, d, vgg, tg, td, history, x, y, cfg):
    loss_d = update_discriminator(g, d, td, history, x, y, sync=False)
    loss_g = update_generator(g, d, tg, vgg, x, y, cfg, sync=False)["total"]
    return float(loss_d.asscalar()), float(loss_g.asscalar())


def forward_flops(block, shape):
    """Floating-point operations (2 per multiply-add) of one forward pass of ``block`` on one
    sample of ``shape``, summed over its Conv2D, Conv2DTranspose and Dense layers."""
    total = [0]

    def hook(layer, inputs, output):
        kind = type(layer).__name__
        w = layer.weight.shape
        if kind == "Conv2D":            # each output element: in_channels * kh * kw multiply-adds
            total[0] += 2 * output.size * w[1] * w[2] * w[3]
        elif kind == "Conv2DTranspose":  # each input element scatters into out_ch * kh * kw
            total[0] += 2 * inputs[0].size * w[1] * w[2] * w[3]
        elif kind == "Dense":
            total[0] += 2 * output.size * w[1]

    def attach(b):
        if type(b).__name__ in ("Conv2D", "Conv2DTranspose", "Dense"):
            b.register_forward_hook(hook)
        for child in b._children.values():
            attach(child)

    attach(block)
    block(mx.nd.zeros((1,) + shape))
    return total[0]


def iteration_flops(batch=8):
    """FLOPs of one iteration of each variant: (ours, plain, per-network forward FLOPs)."""
    mx.random.seed(0)
    g = initialize_paper(get_model("unet_generator", in_channels=15))
    d = initialize_paper(get_model("patch_discriminator", in_channels=18))
    vgg = vgg_features("random", resize=224)
    f = {"G": forward_flops(g, (15, 96, 96)), "D": forward_flops(d, (18, 96, 96)),
         "VGG": forward_flops(vgg, (3, 96, 96))}
    # per image: D step = G fwd + 2 D fwd + 2 D bwd (input and weight gradients);
    # G step = G fwd + G bwd (2) + D fwd + D bwd (2) + 2 VGG fwd + VGG bwd
    common = batch * (f["G"] * 4 + f["D"] * (2 + 4 + 1 + 2) + f["VGG"] * 2)
    ours = common + batch * f["VGG"]           # input gradient of the fake images' features
    plain = common + batch * f["VGG"] * 4      # + weight gradients, and both halves backward
    return ours, plain, f


def conv_gflops(channels=256, size=28, batch=8, repeats=10):
    """Float32 throughput (GFLOP/s) of the convolution that dominates an iteration: a 3x3,
    ``channels`` -> ``channels`` convolution (VGG-19's conv3/conv4 blocks, which hold most of the
    feature loss's arithmetic) on ``batch`` x ``channels`` x ``size`` x ``size``, through the same
    oneDNN path training uses; the best of ``repeats`` forward passes. ``nd.dot`` (OpenBLAS) is not
    a fair limit: it runs several times slower than oneDNN's convolutions on these CPUs."""
    x = mx.nd.random.uniform(shape=(batch, channels, size, size))
    w = mx.nd.random.uniform(shape=(channels, channels, 3, 3))
    mx.nd.Convolution(x, w, kernel=(3, 3), pad=(1, 1), num_filter=channels,
                      no_bias=True).wait_to_read()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        mx.nd.Convolution(x, w, kernel=(3, 3), pad=(1, 1), num_filter=channels,
                          no_bias=True).wait_to_read()
        best = min(best, time.perf_counter() - start)
    return 2 * batch * channels * channels * 9 * size * size / best / 1e9


def matmul_gflops(n=1024, repeats=10):
    """Float32 matrix-multiply throughput (GFLOP/s) of ``nd.dot`` (OpenBLAS), for comparison."""
    a = mx.nd.random.uniform(shape=(n, n))
    mx.nd.dot(a, a).wait_to_read()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        mx.nd.dot(a, a).wait_to_read()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def run_variant(name, iters, use_gpu, queue):
    ctx = mx.gpu(0) if use_gpu else mx.cpu()
    rng = np.random.default_rng(0)
    x = mx.nd.array(rng.random((8, 15, 96, 96), np.float32), ctx=ctx)
    y = mx.nd.array(rng.random((8, 3, 96, 96), np.float32), ctx=ctx)
    cfg = LossConfig()
    g, d, vgg, tg, td = build(ctx, optimized=(name == "ours"))
    step = ours_iteration if name == "ours" else plain_iteration
    history = HistoryBuffer()
    times, first = [], None
    for i in range(iters + 1):
        mx.nd.waitall()
        start = time.perf_counter()
        losses = step(g, d, vgg, tg, td, history, x, y, cfg)
        mx.nd.waitall()
        if i == 0:
            first = losses
        else:
            times.append(time.perf_counter() - start)
    recon = None
    if name == "ours":
        batch = mx.nd.array(rng.random((32, 15, 96, 96), np.float32), ctx=ctx)
        g(batch).wait_to_read()
        start = time.perf_counter()
        for _ in range(3):
            g(batch).wait_to_read()
        recon = 3 * 32 / (time.perf_counter() - start)
    conv = conv_gflops() if not use_gpu else None
    matmul = matmul_gflops() if not use_gpu else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu_mem = None
    if use_gpu:
        free, total = mx.context.gpu_memory_info(0)
        gpu_mem = (total - free) / 2 ** 20
    queue.put({"name": name, "ms": 1e3 * statistics.median(times), "first": first,
               "peak_mb": peak, "recon_fps": recon, "gpu_mb": gpu_mem, "matmul": matmul,
               "conv": conv})


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=3, help="timed iterations after one warm-up")
    parser.add_argument("--gpu", action="store_true", help="run on gpu(0)")
    args = parser.parse_args()
    context = mp.get_context("spawn")
    results = {}
    for name in ("plain", "ours"):
        queue = context.Queue()
        proc = context.Process(target=run_variant, args=(name, args.iters, args.gpu, queue))
        proc.start()
        results[name] = queue.get()
        proc.join()
    device = "GPU 0" if args.gpu else f"CPU ({mp.cpu_count()} cores)"
    print(f"brain2pix_gluon training benchmark on {device}; batch 8, 15x96x96, VGG-19 at 224 "
          f"(random weights), median of {args.iters} iterations after 1 warm-up")
    for name in ("plain", "ours"):
        r = results[name]
        extra = f", GPU memory in use {r['gpu_mb']:.0f} MB" if r["gpu_mb"] is not None else ""
        print(f"  {name:<5} {r['ms']:9.1f} ms/iteration   first-iteration L_D {r['first'][0]:.6f} "
              f"L_G {r['first'][1]:.6f}   peak RSS {r['peak_mb']:7.0f} MB{extra}")
    print(f"  speed-up ours vs plain: {results['plain']['ms'] / results['ours']['ms']:.2f}x "
          f"(goal >= 3x, with identical first-iteration losses)")
    same = np.allclose(results["plain"]["first"], results["ours"]["first"], rtol=1e-4)
    print(f"  first-iteration losses agree (rtol 1e-4): {same}")
    print(f"  reconstruction throughput (generator inference, batch 32): "
          f"{results['ours']['recon_fps']:.1f} frames/s")
    ours, plain, per_net = iteration_flops()
    print("  arithmetic per iteration (forward GFLOP per image: "
          + ", ".join(f"{k} {v / 1e9:.2f}" for k, v in per_net.items())
          + f"): ours {ours / 1e9:.0f} GFLOP, plain {plain / 1e9:.0f} GFLOP "
          f"(ratio {plain / ours:.2f}: what removing arithmetic alone can give)")
    if results["ours"]["conv"]:
        peak = results["ours"]["conv"]
        print(f"  machine limit: a 3x3 256->256 convolution (batch 8, 28x28, oneDNN) runs at "
              f"{peak:.1f} GFLOP/s; nd.dot (OpenBLAS, 1024^3) at {results['ours']['matmul']:.1f}")
        for name, flops in (("plain", plain), ("ours", ours)):
            rate = flops / (results[name]["ms"] / 1e3) / 1e9
            print(f"  {name:<5} runs at {rate:6.1f} GFLOP/s = {100 * rate / peak:5.1f} % of the "
                  f"convolution limit")


if __name__ == "__main__":
    main()
