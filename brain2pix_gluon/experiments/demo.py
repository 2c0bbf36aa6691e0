"""``make demo``: the whole pipeline on the embedded simulated dataset, and a check that it learns.

simulate -> prepare -> ridge floor -> train LearnedRF (the ``demo`` profile) -> reconstruct (HDF5,
MP4, GIF) -> evaluate -> table -> Fig. 3; then the learning check
(:mod:`brain2pix_gluon.evaluation.learning_check`).

The model is the paper's LearnedRF (experiment 3: dense voxel -> image maps added to the
RFSimages), trained with the ``demo`` profile (experiments/profiles.py): pixel loss only, a
half-width U-Net, 24 short epochs with the learning rate decaying over the last 12. Each of these
departs from the paper ([code!=paper]) and was chosen by measurement (docs/measurements.md): on
the embedded cortex-like voxels, the paper's losses at a few hundred iterations leave the
generator in a texture phase, and a FixedRF cannot use the voxels' individual colour preferences,
which a per-voxel dense map can. ``--paper-losses`` also trains the same LearnedRF with the
paper's losses (quick profile) and shows it as a row of the table.

The learning check: the same model, same settings, is trained again on **time-shuffled fMRI**
(``train.input_control=time_shuffled``: every input is a real one, paired with another moment's
frame), and the held-out test clips (images never shown in training) of both are compared: with
chance on two-way identification (AlexNet pool2 and pool5), with each other on two-way
identification and on PixCorr inside the fisheye frame's valid field, and with the mean training
frame on PixCorr and SSIM. A second verdict compares the model with two floors that need no deep
network: the mean training frame and a ridge decoder of the same RFSimages (``brain2pix baseline
ridge``, fitted first, in under a minute), on PixCorr inside the valid field and pixel two-way
identification; ``floors_comparison.png`` shows them side by side. Learning curves of model and
control (held-out two-way identification and PixCorr) are drawn from the generator weights the
trainer saves every 6 epochs. The demo exits with status 3 when the model did not learn from the
brain signal; the floors are reported beside it and never change the exit status.

Every output of a demo, quick or random-weight run says so; the control's outputs say
"TIME-SHUFFLED fMRI CONTROL".
"""

import os
import time

import numpy as np

from ..utils import get_logger, write_json_atomic

__all__ = ["DEMO_EXPERIMENT", "DEMO_PROFILE", "DEMO_SETTINGS", "CONTROL", "busiest_window",
           "run_demo", "format_summary"]

# Settings of the demo that differ from its profile and the defaults (stated with every
# figure it prints and in demo_summary.json).
DEMO_SETTINGS = ()
# the experiment (experiments/registry.py) and run profile (experiments/profiles.py) of the
# demo's model and control
DEMO_EXPERIMENT = "learned_rf"
DEMO_PROFILE = "demo"
# the optional paper-loss run (--paper-losses): the same experiment, the paper's losses
PAPER_LOSS_PROFILE = "quick"
PAPER_LOSS_LABEL = "paper losses (quick)"
CONTROL = "train.input_control=time_shuffled"


def _extractor(config, ctx):
    from ..evaluation.features import feature_extractor

    return feature_extractor(config.evaluation, ctx)


def _train_control(settings, weights, data, out, log_level):
    """The control's experiment (train and reconstruct, no evaluation); run in a child process."""
    from .runner import run_experiment
    from ..utils import setup_logging

    setup_logging(False)
    get_logger().setLevel(log_level)
    return run_experiment(DEMO_EXPERIMENT, data, os.path.join(out, "control"), DEMO_PROFILE,
                          list(settings) + [CONTROL], weights, show_progress=False,
                          evaluate=False)


def busiest_window(targets, count=8):
    """Start of the ``count`` consecutive test frames whose ground truth changes most.

    Fig. 3 shows consecutive frames; the demo picks the window by the ground truth alone (the sum
    of mean absolute differences between neighbouring frames), never by the reconstructions, so
    the figure shows scene changes a reader can follow without favouring the model.

    Parameters
    ----------
    targets : ndarray, shape (n, 3, H, W)
    count : int

    Returns
    -------
    int
    """
    targets = np.asarray(targets, np.float32)
    if len(targets) <= count:
        return 0
    steps = np.abs(np.diff(targets, axis=0)).mean(axis=(1, 2, 3))      # (n - 1,)
    window = np.convolve(steps, np.ones(count - 1), mode="valid")      # (n - count + 1,)
    return int(np.argmax(window))


def run_demo(out="demo_output", weights="auto", extra=(), show_progress=True,
             n_permutations=1000, parallel=True, paper_losses=False):
    """Run the demo; returns the summary dict written to ``OUT/demo_summary.json``.

    Parameters
    ----------
    out : str
        Output folder (results, data cache, figures, summary).
    weights : str
        ``auto`` (pretrained when cached or downloadable, else random with one warning),
        ``random`` (marked), ``pretrained`` or a folder: VGG, AlexNet and C3D weights.
    extra : sequence of str
        ``section.key=value`` overrides applied to model and control alike (after
        :data:`DEMO_SETTINGS`).
    n_permutations : int
        Shuffles of the identification permutation test.
    parallel : bool
        Train the control in a second process while the model trains (MXNet's CPU training of
        these small batches keeps about one core busy, so on 2 cores this halves the wall time);
        False trains them one after the other.
    paper_losses : bool
        Also train the demo's model with the paper's losses (the quick profile, about 8 more
        minutes on 2 cores) and show it as a row of the table (in no verdict).
    """
    import mxnet as mx

    from ..data.dataset import RFSImageDataset
    from ..evaluation.evaluate import field_mask
    from ..evaluation.learning_check import (alexnet_layers, learning_check, learning_curve,
                                            plot_learning_curves)
    from ..evaluation.metrics import mean_training_frame
    from ..data.embedded import simulated_dataset
    from .runner import experiment_config, run_experiment
    from ..io.reconstructions import read_reconstructions
    from ..model_zoo.pretrained import resolve_config_weights
    from ..baselines.ridge import run_ridge_baseline
    from ..plotting import consecutive_frames, model_grid, save_figure
    from ..training.builder import dataset_mode

    log = get_logger()
    start = time.time()
    if weights == "random":
        log.warning("demo: VGG, AlexNet and C3D use RANDOM weights (--weights random); every "
                    "output is marked. The default, --weights auto, uses the pretrained ones "
                    "where they are cached or can be downloaded.")
    settings = list(DEMO_SETTINGS) + list(extra)
    results = os.path.join(out, "results")
    config = experiment_config(DEMO_EXPERIMENT, DEMO_PROFILE, settings, weights)
    # 'auto' is decided here, once, for the model, the control (another process) and the check
    config, resolved = resolve_config_weights(config)
    run_settings = settings + resolved
    data = simulated_dataset(config, os.path.join(out, "data"), show_progress)
    # the linear floor (seconds; before the networks, so that it never competes with them)
    ridge_recon = os.path.join(out, "ridge", "reconstructions.h5")
    if not os.path.exists(ridge_recon):
        run_ridge_baseline(data, os.path.dirname(ridge_recon), config,
                           show_progress=show_progress)
    data_at = time.time()
    if parallel:
        import concurrent.futures
        import multiprocessing

        log.info("demo: training the time-shuffled control in a second process, alongside the "
                 "model (its log lines are marked TIME-SHUFFLED fMRI CONTROL)")
        with concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn")) as pool:
            job = pool.submit(_train_control, run_settings, weights, data, out, log.level)
            fixed = run_experiment(DEMO_EXPERIMENT, data, results, DEMO_PROFILE, run_settings,
                                   weights, show_progress=show_progress)
            control = job.result()
    else:
        fixed = run_experiment(DEMO_EXPERIMENT, data, results, DEMO_PROFILE, run_settings,
                               weights, show_progress=show_progress)
        control = _train_control(run_settings, weights, data, out, log.level)
    extra_rows = {}
    if paper_losses:
        log.info("demo: training the same model with the paper's losses (%s profile)",
                 PAPER_LOSS_PROFILE)
        paper = run_experiment(DEMO_EXPERIMENT, data, os.path.join(out, "paper_losses"),
                               PAPER_LOSS_PROFILE, run_settings, weights,
                               show_progress=show_progress, evaluate=False)
        extra_rows[PAPER_LOSS_LABEL] = paper["variants"][0]["reconstructions"]
    control_at = time.time()
    model_status, control_status = fixed["variants"][0], control["variants"][0]
    fixed_recon = model_status["reconstructions"]
    label = model_status["label"]
    figure = os.path.join(out, "fig3_consecutive_frames.png")
    start_frame = busiest_window(read_reconstructions(fixed_recon)["targets"], 8)
    save_figure(consecutive_frames(fixed_recon, start=start_frame, count=8), figure, dpi=120,
                bbox_inches="tight")
    comparison = os.path.join(out, "floors_comparison.png")
    save_figure(model_grid({label: fixed_recon, "ridge floor": ridge_recon, **extra_rows,
                            "time-shuffled control": control_status["reconstructions"]},
                           count=8), comparison, dpi=120, bbox_inches="tight")

    # the learning check, on every held-out test frame
    ctx = mx.cpu()
    extractor = _extractor(config, ctx)
    train_set = RFSImageDataset(os.path.join(fixed["data"], "train.h5"), config.data.rois, 1.0,
                                dataset_mode(config))
    mean_frame = mean_training_frame(train_set)
    recon = read_reconstructions(fixed_recon)
    mask, mask_info = field_mask(recon["attrs"], recon["targets"].shape[-1])
    check = learning_check(fixed_recon, control_status["reconstructions"], mean_frame, extractor,
                           n_permutations=n_permutations, seed=config.evaluation.seed, mask=mask,
                           batch_size=config.evaluation.batch_size, ridge_path=ridge_recon,
                           extra_paths=extra_rows)
    gt = alexnet_layers(extractor, recon["targets"], config.evaluation.batch_size)
    test_path = os.path.join(fixed["data"], "test.h5")
    curves = {label: learning_curve(status["dir"], test_path, extractor, mask, gt,
                                    batch_size=config.evaluation.batch_size, ctx=ctx)
              for label, status in (("model", model_status),
                                    ("time-shuffled control", control_status))}
    marks = sorted(set(fixed["marks"]) | set(control["marks"]))
    sim = config.simulation
    note = (f"simulated data, noise_sd {sim.noise_sd} (x the signal's SD), {sim.n_repetitions} "
            f"test repetitions averaged; {check['n_frames']} held-out test frames; "
            f"{label}, profile {DEMO_PROFILE}{': ' + ' '.join(settings) if settings else ''}")
    curve_png = plot_learning_curves(curves, os.path.join(out, "learning_curves.png"), marks, note)
    per_frame = check.pop("per_frame")
    summary = {
        "seconds": round(time.time() - start, 1),
        "seconds_by_stage": {"simulate and prepare": round(data_at - start, 1),
                             "model (train, reconstruct, evaluate) and control (train, "
                             "reconstruct)" + (", side by side" if parallel else ""):
                             round(control_at - data_at, 1),
                             "learning check and curves": round(time.time() - control_at, 1)},
        "weights": weights,
        "weights_resolved": {"feature_loss": config.loss.feature_weights,
                             "evaluation": config.evaluation.feature_weights},
        "marks": marks,
        "settings": settings,
        "simulation": {"noise_sd": sim.noise_sd, "n_repetitions": sim.n_repetitions},
        "table": [t for t in fixed["tables"] if t.endswith("tables.md")][0],
        "profile": DEMO_PROFILE,
        "model": label,
        "paper_loss_reconstructions": extra_rows.get(PAPER_LOSS_LABEL),
        "figure": figure,
        "floors_figure": comparison,
        "ridge_reconstructions": ridge_recon,
        "gif": os.path.join(os.path.dirname(fixed_recon), "reconstructions.gif"),
        "mp4": os.path.join(os.path.dirname(fixed_recon), "reconstructions.mp4"),
        "reconstructions": fixed_recon,
        "control_reconstructions": control_status["reconstructions"],
        "results": model_status["results"],
        "learning_curves": curve_png,
        "curves": curves,
        "learning_check": check,
        "field_mask": mask_info,
        # the learning verdict alone sets the exit status; the floors are information
        "learns": bool(check["passed"]),
        "floors_passed": bool(check["floors_passed"]),
    }
    write_json_atomic(os.path.join(out, "demo_summary.json"), summary)
    np.savez_compressed(os.path.join(out, "learning_check_per_frame.npz"),
                        **{f"{who}__{key}": np.asarray(values)
                           for who, metrics in per_frame.items()
                           for key, values in metrics.items()})
    return summary


def format_summary(summary):
    """What ``brain2pix demo`` prints at the end: where everything is, and the learning check."""
    from ..evaluation.learning_check import format_learning_check

    s = summary
    lines = ["", "=== brain2pix demo finished in %.0f s ===" % s["seconds"]]
    if s["marks"]:
        lines.append("marks: " + "; ".join(s["marks"]))
    lines.append(f"profile: {s.get('profile', DEMO_PROFILE)}; settings: "
                 + (" ".join(s["settings"]) or "none beyond it") +
                 f" (simulation.noise_sd={s['simulation']['noise_sd']})")
    with open(s["table"]) as handle:
        lines.append(handle.read())
    lines += [f"table           {s['table']}", f"figure          {s['figure']}",
              f"GIF / MP4       {s['gif']}  {s['mp4']}", f"HDF5            {s['reconstructions']}",
              f"metrics         {s['results']}",
              f"control HDF5    {s['control_reconstructions']}",
              f"ridge floor     {s.get('ridge_reconstructions', '')}",
              f"floors figure   {s.get('floors_figure', '')}",
              f"learning curves {s['learning_curves']}",
              "", f"{s.get('model', 'the model')} ({s.get('profile', DEMO_PROFILE)} profile) "
              "against the same model "
              "trained on TIME-SHUFFLED fMRI, the ridge floor and the mean training frame:",
              format_learning_check(s["learning_check"])]
    return "\n".join(lines)
