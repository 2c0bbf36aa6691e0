"""``make demo``: the whole pipeline on the embedded simulated dataset, in minutes on 2 CPU cores.

simulate -> prepare -> train FixedRF (quick profile, the paper's losses) -> reconstruct (HDF5, MP4,
GIF) -> evaluate -> table -> figure; then a learning check on the synthetic experiment
(RF-sampled target pixels as input): its held-out reconstructions are compared with the mean
training frame on PixCorr and SSIM.

The learning check trains the same U-Net with the pixel loss alone
(``loss.adversarial_weight=0 loss.feature_weight=0``, written in its config and printed): with
randomly initialised VGG weights and a few hundred iterations the adversarial and feature terms
dominate and their noise hides whether the network has learned to map RF-sampled inputs to frames,
which is what the check is for. Every output of a quick or random-weight run says so.
"""

import argparse
import os
import sys
import time

import numpy as np

from .utils import get_logger, write_json_atomic

__all__ = ["run_demo", "mean_frame_comparison", "main", "LEARNING_CHECK"]

LEARNING_CHECK = ("loss.adversarial_weight=0", "loss.feature_weight=0")


def mean_frame_comparison(recon_path, train_path):
    """PixCorr and SSIM of reconstructions and of the mean training frame, on the same targets.

    Returns
    -------
    dict
        ``{"model": {"pixcorr", "ssim"}, "mean_frame": {...}, "n_frames"}``
    """
    from .evaluation import pixcorr, ssim_gray
    from .io.prepared import open_prepared
    from .io.reconstructions import read_reconstructions

    data = read_reconstructions(recon_path)
    with open_prepared(train_path) as handle:
        frames = handle["frames"]
        total = np.zeros(frames.shape[1:], np.float64)
        for start in range(0, frames.shape[0], 512):
            total += frames[start:start + 512].astype(np.float64).sum(axis=0)
        mean = (total / frames.shape[0]).astype(np.float32)
    mean_frames = np.repeat(mean[None], len(data["targets"]), axis=0)
    out = {"n_frames": int(len(data["targets"]))}
    for name, images in (("model", data["reconstructions"]), ("mean_frame", mean_frames)):
        out[name] = {"pixcorr": float(np.nanmean(pixcorr(images, data["targets"]))),
                     "ssim": float(np.mean(ssim_gray(images, data["targets"])))}
    return out


def run_demo(out="demo_output", weights="random", extra=(), show_progress=True):
    """Run the demo; returns the summary dict written to ``OUT/demo_summary.json``."""
    from .experiments import run_experiment
    from .plotting import consecutive_frames

    log = get_logger()
    start = time.time()
    if weights == "random":
        log.warning("demo: VGG, AlexNet and C3D use RANDOM weights (this machine cannot download "
                    "the pretrained ones); every output is marked. Pass --weights pretrained to "
                    "use the real ones.")
    results = os.path.join(out, "results")
    data_home = os.path.join(out, "data")
    fixed = run_experiment("fixed_rf", None, results, "quick", list(extra), weights,
                           data_home=data_home, show_progress=show_progress)
    synthetic = run_experiment("synthetic", None, results, "quick",
                               list(extra) + list(LEARNING_CHECK), weights, data_home=data_home,
                               show_progress=show_progress, evaluate=False)
    fixed_recon = fixed["variants"][0]["reconstructions"]
    figure = os.path.join(out, "fig3_consecutive_frames.png")
    fig = consecutive_frames(fixed_recon, start=10, count=8)
    fig.savefig(figure, dpi=120, bbox_inches="tight")
    comparison = mean_frame_comparison(synthetic["variants"][0]["reconstructions"],
                                       os.path.join(synthetic["data"], "train.h5"))
    learned = (comparison["model"]["pixcorr"] > comparison["mean_frame"]["pixcorr"]
               and comparison["model"]["ssim"] > comparison["mean_frame"]["ssim"])
    summary = {
        "seconds": round(time.time() - start, 1),
        "weights": weights,
        "marks": sorted(set(fixed["marks"]) | set(synthetic["marks"])),
        "table": [t for t in fixed["tables"] if t.endswith("tables.md")][0],
        "figure": figure,
        "gif": os.path.join(os.path.dirname(fixed_recon), "reconstructions.gif"),
        "mp4": os.path.join(os.path.dirname(fixed_recon), "reconstructions.mp4"),
        "reconstructions": fixed_recon,
        "results": fixed["variants"][0]["results"],
        "synthetic_vs_mean_frame": comparison,
        "learning_check_overrides": list(LEARNING_CHECK),
        "learned": bool(learned),
    }
    write_json_atomic(os.path.join(out, "demo_summary.json"), summary)
    return summary


def main(argv=None):
    from .utils import setup_logging

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo_output")
    parser.add_argument("--weights", default="random",
                        help="random (default here: no internet), pretrained, or a folder/file")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value")
    args = parser.parse_args(argv)
    setup_logging(False)
    s = run_demo(args.out, args.weights, args.overrides, not args.no_progress)
    c = s["synthetic_vs_mean_frame"]
    print("\n=== brain2pix demo finished in %.0f s ===" % s["seconds"])
    if s["marks"]:
        print("marks: " + "; ".join(s["marks"]))
    print(open(s["table"]).read())
    print(f"table      {s['table']}")
    print(f"figure     {s['figure']}")
    print(f"GIF / MP4  {s['gif']}  {s['mp4']}")
    print(f"HDF5       {s['reconstructions']}")
    print(f"metrics    {s['results']}")
    print(f"\nlearning check: synthetic experiment ({' '.join(LEARNING_CHECK)}), "
          f"{c['n_frames']} held-out frames:")
    print(f"  {'':<22}{'PixCorr':>9}{'SSIM':>9}")
    print(f"  {'reconstructions':<22}{c['model']['pixcorr']:9.3f}{c['model']['ssim']:9.3f}")
    print(f"  {'mean training frame':<22}{c['mean_frame']['pixcorr']:9.3f}{c['mean_frame']['ssim']:9.3f}")
    print("  -> the model beats the mean frame on both" if s["learned"] else
          "  -> WARNING: the model does not beat the mean frame on both metrics")
    return 0 if s["learned"] else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
