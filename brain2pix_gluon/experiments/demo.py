"""``make demo``: the whole pipeline on the embedded world, and a check that the model learns.

simulate -> prepare -> ridge floor -> train FixedRF (the ``demo`` profile) and, side by side, the
same model on time-shuffled fMRI -> reconstruct (HDF5, MP4, GIF) -> evaluate -> table -> Fig. 3
-> the learning check (:mod:`brain2pix_gluon.evaluation.learning_check`) and learning curves.

The model is the paper's main model, FixedRF (experiment 2), with the paper's three losses,
trained with the ``demo`` profile (experiments/profiles.py): networks of half the width, 4 epochs
at learning rate 1e-3, VGG input of 64 pixels ([code!=paper], the settings of ``make science``).
On the embedded world, whose recurring sets and characters are what the paper's TV series gives
its decoder, it learns in that budget (docs/science.md).

The learning check: the same model, same settings, is trained again on **time-shuffled fMRI**
(``train.input_control=time_shuffled``: every input is a real one, paired with another moment's
frame), and the held-out test clips (new scenes of the world) of both are compared: with chance
on two-way identification (AlexNet pool2 and pool5), with each other on two-way identification
and on PixCorr inside the fisheye frame's valid field. That verdict alone sets the exit status
(3: the model did not learn). Beside it, as information: the floors (the mean training frame and
a ridge decoder of the same RFSimages, ``brain2pix baseline ridge``; ``floors_comparison.png``)
and what a viewer recognises (which set each reconstruction shows, where its characters are, from
the world's labels). Learning curves of model and control are drawn from the generator weights
saved after every epoch.

Every output of the demo says "DEMO RUN" (and "RANDOM ... WEIGHTS" where they are); the
control's outputs say "TIME-SHUFFLED fMRI CONTROL".
"""

import os
import time

import numpy as np

from ..provenance import code_version, machine
from ..utils import get_logger, write_json_atomic

__all__ = ["DEMO_EXPERIMENT", "DEMO_PROFILE", "CONTROL", "run_demo", "format_summary"]

# the experiment (experiments/registry.py) and run profile (experiments/profiles.py) of the
# demo's model and control
DEMO_EXPERIMENT = "fixed_rf"
DEMO_PROFILE = "demo"
CONTROL = "train.input_control=time_shuffled"


def _train_control(settings, weights, data, out, log_level, profile):
    """The control's experiment (train and reconstruct, no evaluation); run in a child process."""
    from .runner import run_experiment
    from ..utils import setup_logging

    setup_logging(False)
    get_logger().setLevel(log_level)
    return run_experiment(DEMO_EXPERIMENT, data, os.path.join(out, "control"), profile,
                          list(settings) + [CONTROL], weights, show_progress=False,
                          evaluate=False)


def _train_side_by_side(settings, weights, data, out, show_progress, parallel, log, profile):
    """The model (trained, reconstructed, evaluated) and its control (trained, reconstructed)."""
    from .runner import run_experiment

    results = os.path.join(out, "results")
    if not parallel:
        model = run_experiment(DEMO_EXPERIMENT, data, results, profile, settings, weights,
                               show_progress=show_progress)
        return model, _train_control(settings, weights, data, out, log.level, profile)
    import concurrent.futures
    import multiprocessing

    log.info("demo: training the time-shuffled control in a second process, alongside the "
             "model (its log lines are marked TIME-SHUFFLED fMRI CONTROL)")
    with concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn")) as pool:
        job = pool.submit(_train_control, settings, weights, data, out, log.level, profile)
        model = run_experiment(DEMO_EXPERIMENT, data, results, profile, settings, weights,
                               show_progress=show_progress)
        return model, job.result()


def run_demo(out, weights="auto", extra=(), show_progress=True, n_permutations=1000,
             parallel=True, profile=DEMO_PROFILE):
    """Run the demo; returns the summary dict written to ``OUT/demo_summary.json``.

    Parameters
    ----------
    out : str
        Output folder (results, data cache, figures, summary).
    weights : str
        ``auto`` (pretrained when cached or downloadable, else random with one warning),
        ``random`` (marked), ``pretrained`` or a folder: VGG, AlexNet and C3D weights.
    extra : sequence of str
        ``section.key=value`` overrides applied to model and control alike.
    n_permutations : int
        Shuffles of the identification permutation test.
    parallel : bool
        Train the control in a second process while the model trains (MXNet's CPU training of
        these small batches keeps about one core busy, so on 2 cores this halves the wall time);
        False trains them one after the other.
    profile : str
        The run profile of model and control (``benchmarks/learning_seeds.py`` checks the
        ``science`` profile's FixedRF this way on several simulator seeds).
    """
    import mxnet as mx

    from ..baselines.ridge import run_ridge_baseline
    from ..data.dataset import RFSImageDataset
    from ..data.embedded import embedded_labels, simulated_dataset
    from ..data.simulation import labels_for
    from ..evaluation.evaluate import field_mask
    from ..evaluation.features import feature_extractor
    from ..evaluation.learning_check import alexnet_layers, learning_check, learning_curve
    from ..evaluation.metrics import mean_training_frame
    from ..evaluation.recognition import world_classifier
    from ..io.reconstructions import read_reconstructions
    from ..model_zoo.pretrained import resolve_config_weights
    from ..plotting import consecutive_frames, learning_curves, model_grid, save_figure
    from ..training.builder import dataset_mode
    from ..io.reconstructions import RECONSTRUCTION_FILES
    from .runner import experiment_config

    log = get_logger()
    start = time.time()
    if weights == "random":
        log.warning("demo: VGG, AlexNet and C3D use RANDOM weights (--weights random); every "
                    "output is marked. The default, --weights auto, uses the pretrained ones "
                    "where they are cached or can be downloaded.")
    settings = list(extra)
    config = experiment_config(DEMO_EXPERIMENT, profile, settings, weights)
    # 'auto' is decided here, once, for the model, the control (another process) and the check
    config, resolved = resolve_config_weights(config)
    run_settings = settings + resolved
    data = simulated_dataset(config, os.path.join(out, "data"), show_progress)
    # the linear floor (seconds; before the networks, so that it never competes with them)
    ridge_recon = os.path.join(out, "ridge", RECONSTRUCTION_FILES["h5"])
    if not os.path.exists(ridge_recon):
        run_ridge_baseline(data, os.path.dirname(ridge_recon), config,
                           show_progress=show_progress)
    data_at = time.time()
    model, control = _train_side_by_side(run_settings, weights, data, out, show_progress,
                                         parallel, log, profile)
    control_at = time.time()
    model_status, control_status = model["variants"][0], control["variants"][0]
    model_recon, control_recon = model_status["reconstructions"], control_status["reconstructions"]
    recon = read_reconstructions(model_recon)
    figure = os.path.join(out, "fig3_consecutive_frames.png")
    save_figure(consecutive_frames(model_recon, start="busiest", count=8), figure, dpi=120,
                bbox_inches="tight")
    comparison = os.path.join(out, "floors_comparison.png")
    save_figure(model_grid({model_status["label"]: model_recon, "ridge floor": ridge_recon,
                            "time-shuffled control": control_recon}, count=8),
                comparison, dpi=120, bbox_inches="tight")

    # the learning check, on every held-out test frame, with what a viewer recognises
    ctx = mx.cpu()
    extractor = feature_extractor(config.evaluation, ctx)
    train_path = os.path.join(data, "train.h5")
    mean_frame = mean_training_frame(RFSImageDataset(train_path, config.data.rois, 1.0,
                                                     dataset_mode(config)))
    mask, mask_info = field_mask(recon["attrs"], recon["targets"].shape[-1])
    world = embedded_labels(data)
    sets, characters = labels_for(world, recon["run_names"], recon["samples"])
    labels = {"sets": sets, "characters": characters,
              "classifier": world_classifier(train_path, world, mask)}
    gt = alexnet_layers(extractor, recon["targets"], config.evaluation.batch_size)
    check = learning_check(model_recon, control_recon, mean_frame, extractor,
                           n_permutations=n_permutations, seed=config.evaluation.seed, mask=mask,
                           batch_size=config.evaluation.batch_size, ridge_path=ridge_recon,
                           labels=labels, gt_features=gt)
    test_path = os.path.join(data, "test.h5")
    curves = {label: learning_curve(status["run"], test_path, extractor, mask, gt,
                                    batch_size=config.evaluation.batch_size, ctx=ctx)
              for label, status in (("model", model_status),
                                    ("time-shuffled control", control_status))}
    marks = sorted(set(model["marks"]) | set(control["marks"]))
    sim = config.simulation
    note = (f"the embedded world (simulated), noise_sd {sim.noise_sd} (x the signal's SD), "
            f"{sim.n_repetitions} test repetitions averaged; {check['n_frames']} held-out test "
            f"frames; {model_status['label']}, profile {profile}"
            f"{': ' + ' '.join(settings) if settings else ''}")
    curve_png = learning_curves(curves, os.path.join(out, "learning_curves.png"), marks, note)
    per_frame = check.pop("per_frame")
    recon_dir = os.path.dirname(model_recon)
    summary = {
        "seconds": round(time.time() - start, 1),
        "seconds_by_stage": {"simulate, prepare, ridge floor": round(data_at - start, 1),
                             "model (train, reconstruct, evaluate) and control (train, "
                             "reconstruct)" + (", side by side" if parallel else ""):
                             round(control_at - data_at, 1),
                             "figures, learning check and curves": round(time.time() - control_at,
                                                                         1)},
        **code_version(), "machine": machine(),
        "weights": weights,
        "weights_resolved": {"feature_loss": config.loss.feature_weights,
                             "evaluation": config.evaluation.feature_weights},
        "marks": marks,
        "settings": settings,
        "simulation": {"noise_sd": sim.noise_sd, "n_repetitions": sim.n_repetitions,
                       "seed": sim.seed},
        "table": [t for t in model["tables"] if t.endswith("tables.md")][0],
        "profile": profile,
        "model": model_status["label"],
        "figure": figure,
        "floors_figure": comparison,
        "ridge_reconstructions": ridge_recon,
        **{kind: os.path.join(recon_dir, RECONSTRUCTION_FILES[kind]) for kind in ("gif", "mp4")},
        "reconstructions": model_recon,
        "control_reconstructions": control_recon,
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
    lines.append(f"profile: {s['profile']}; settings: "
                 + (" ".join(s["settings"]) or "none beyond it") +
                 f" (simulation.seed={s['simulation']['seed']}, "
                 f"simulation.noise_sd={s['simulation']['noise_sd']})")
    with open(s["table"]) as handle:
        lines.append(handle.read())
    lines += [f"table           {s['table']}", f"figure          {s['figure']}",
              f"GIF / MP4       {s['gif']}  {s['mp4']}", f"HDF5            {s['reconstructions']}",
              f"metrics         {s['results']}",
              f"control HDF5    {s['control_reconstructions']}",
              f"ridge floor     {s['ridge_reconstructions']}",
              f"floors figure   {s['floors_figure']}",
              f"learning curves {s['learning_curves']}",
              "", f"{s['model']} ({s['profile']} profile) against the same model trained on "
              "TIME-SHUFFLED fMRI, the ridge floor and the mean training frame:",
              format_learning_check(s["learning_check"])]
    return "\n".join(lines)
