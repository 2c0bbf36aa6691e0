"""The seven experiment scripts end to end (quick profile, tiny simulated data), the notebooks on
their results, and skipping of finished work on a rerun."""

import csv
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from brain2pix_gluon.experiments.registry import (EXPERIMENTS, FIGURES, TABLE_GROUPS,
                                                  get_experiment, result_path)
from brain2pix_gluon.io.reconstructions import read_reconstructions
from brain2pix_gluon.provenance import random_mark

from conftest import TINY, layered

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["run_synthetic", "run_fixed_rf", "run_learned_rf", "run_baselines", "run_roi",
           "run_ablation", "run_data_size"]
# tiny and fast: 32x32 frames, two short runs, one training step per epoch, 6 evaluated frames
FAST = layered(TINY, ["simulation.volumes_per_run=40", "train.epochs=1",
                     "train.max_steps_per_epoch=1", "evaluation.max_frames=6",
                     "evaluation.batch_size=6"])


def run_script(name, results, *extra):
    cmd = [sys.executable, os.path.join(ROOT, "scripts", f"{name}.py"), "--profile", "quick",
           "--out", results["out"], "--weights", "random", "--no-progress"] + FAST + list(extra)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=results["env"], timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every script run once, in this order, into one results folder (shared simulated data)."""
    root = tmp_path_factory.mktemp("experiments")
    env = dict(os.environ, BRAIN2PIX_DATA=str(root / "data"), PYTHONUNBUFFERED="1")
    res = {"out": str(root / "results"), "env": env}
    res["stdout"] = {name: run_script(name, res).stdout for name in SCRIPTS}
    return res


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_runs_end_to_end(name, results):
    stdout = results["stdout"][name]
    experiment = name[len("run_"):]
    summary = json.load(open(os.path.join(results["out"], experiment, "summary.json")))
    assert summary["profile"] == "quick"
    assert "QUICK RUN" in summary["marks"] and random_mark("evaluation") in summary["marks"]
    # every variant of the registry, in its order, each written where the registry says
    spec = get_experiment(experiment)
    assert [s["label"] for s in summary["variants"]] == [v.label for v in spec.variants]
    tables = open(os.path.join(results["out"], experiment, "tables", "tables.md")).read()
    for status, variant in zip(summary["variants"], spec.variants):
        assert status["reconstructions"] == result_path(results["out"], experiment,
                                                        variant.label, "recon")
        recon = read_reconstructions(status["reconstructions"])
        assert len(recon["reconstructions"]) >= 6
        # trained variants carry the profile's mark; baseline 1 (nothing trained) its C3D's
        if variant.kind == "train":
            assert "QUICK RUN" in recon.marks
        elif variant.kind == "nishimoto":
            assert random_mark("encoding_features") in recon.marks
        res = json.load(open(status["results"]))
        assert res["n_frames"] == 6 and len(res["metrics"]) == 12
        # each summary number is the mean of the per-frame values written beside it
        with open(os.path.join(os.path.dirname(status["results"]), "per_frame.csv")) as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 6
        for key, metric in res["metrics"].items():
            values = np.array([float(r[key]) for r in rows])
            assert metric["mean"] == pytest.approx(np.nanmean(values), rel=1e-6, abs=1e-9)
        # ... and the per-frame values are the reconstructions' own: PixCorr in the valid
        # field, computed here from the reconstruction file
        from brain2pix_gluon.preprocessing.retina import fisheye_valid_mask

        mask = fisheye_valid_mask(recon["targets"].shape[-1], 10.0)
        for row, image, target in zip(rows, recon["reconstructions"], recon["targets"]):
            with np.errstate(invalid="ignore", divide="ignore"):
                by_hand = np.corrcoef(image[:, mask].ravel(), target[:, mask].ravel())[0, 1]
            assert float(row["pixcorr_disc"]) == pytest.approx(by_hand, rel=1e-5, abs=1e-9,
                                                               nan_ok=True)
        # ... and the experiment's tables have a row for it (grouped results tables only)
        if spec.table_group in TABLE_GROUPS:
            assert variant.label in tables, variant.label
    assert "QUICK RUN" in stdout


def test_rerun_skips_finished_work(results):
    proc = run_script("run_ablation", results)
    summary = json.load(open(os.path.join(results["out"], "ablation", "summary.json")))
    assert [s["training"] for s in summary["variants"]] == ["done before"] * 3
    assert [s["evaluation"] for s in summary["variants"]] == ["done before"] * 3
    assert "Table 5. Ablation experiment" in proc.stdout


def test_fixed_rf_is_tested_against_the_baselines(results):
    res = json.load(open(os.path.join(results["out"], "fixed_rf", "b2p_fixedrf", "eval",
                                      "results.json")))
    # run_fixed_rf ran before run_baselines; evaluating again after them adds the binomial tests
    run_script("run_fixed_rf", results)
    res = json.load(open(os.path.join(results["out"], "fixed_rf", "b2p_fixedrf", "eval",
                                      "results.json")))
    assert set(res["baselines"]) == {"Baseline 1", "Baseline 2", "Baseline 3",
                                     "Ridge floor (not in the paper)"}
    assert all(b["n"] == 6 * 12 for b in res["baselines"].values())


@pytest.mark.parametrize("notebook", ["fig3_consecutive_frames", "fig4_baselines", "fig5_roi",
                                      "fig6_data_size", "tables"])
def test_notebooks_execute_on_the_scripts_results(notebook, results):
    import nbformat
    from nbclient import NotebookClient

    path = os.path.join(ROOT, "notebooks", f"{notebook}.ipynb")
    nb = nbformat.read(path, as_version=4)
    os.environ["BRAIN2PIX_RESULTS"] = results["out"]
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": ROOT}}).execute()
    finally:
        del os.environ["BRAIN2PIX_RESULTS"]
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    if notebook.startswith("fig"):
        from PIL import Image

        # a picture (not a blank canvas) of the panels the registry names, read from the
        # scripts' results (the notebook prints which files or labels it drew)
        with Image.open(os.path.join(results["out"], notebook[:4] + ".png")) as image:
            picture = np.asarray(image.convert("L"), np.float32)
        assert min(picture.shape) > 100 and picture.std() > 10
        panels = FIGURES[notebook[:4]]
        assert all(label in text or result_path(results["out"], experiment, label) in text
                   for experiment, label in panels), text
    else:
        # the paper's grouped tables, with a row for every variant of their experiments
        for group, (number, title) in TABLE_GROUPS.items():
            assert f"Table {number}. {title}" in text
            for label in (v.label for e in EXPERIMENTS.values() if e.table_group == group
                          for v in e.variants):
                assert label in text


def test_notebook_pairs_are_in_sync():
    import jupytext

    for name in ("fig3_consecutive_frames", "fig4_baselines", "fig5_roi", "fig6_data_size", "tables"):
        py = jupytext.read(os.path.join(ROOT, "notebooks", f"{name}.py"))
        ipynb = jupytext.read(os.path.join(ROOT, "notebooks", f"{name}.ipynb"))
        assert [c.source for c in py.cells] == [c.source for c in ipynb.cells], name


def test_demo_writes_every_output_and_the_learning_check(tmp_path):
    """The demo trains FixedRF (demo profile) and its time-shuffled control, and saves the
    check it printed; the saved numbers are recomputed here from the files on disk."""
    import h5py
    import numpy as np
    import yaml

    from brain2pix_gluon.cli import main
    from brain2pix_gluon.experiments.demo import CONTROL
    from brain2pix_gluon.provenance import DEMO_RUN
    from brain2pix_gluon.evaluation.metrics import fisheye_valid_mask

    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--weights", "random", "--no-progress"]
                + layered(FAST, ["train.epochs=2"]))
    summary = json.load(open(out / "demo_summary.json"))
    assert code == (0 if summary["learning_check"]["passed"] else 3)
    for key in ("table", "figure", "gif", "mp4", "reconstructions", "control_reconstructions",
                "results", "learning_curves", "floors_figure"):
        assert os.path.getsize(summary[key]) > 0, key
    assert DEMO_RUN in summary["marks"] and "TIME-SHUFFLED fMRI CONTROL" in summary["marks"]
    check = summary["learning_check"]
    assert check["input_control"] == {"model": "none", "control": "time_shuffled"}
    assert summary["floors_passed"] is all(c["passed"] for c in check["criteria"]
                                           if c.get("floor"))
    assert summary["learns"] is check["passed"] is all(
        c["passed"] for c in check["criteria"] if not c.get("floor"))
    # what a viewer recognises, for every row and the ground truth (information only)
    assert set(check["recognition"]) == {"model", "control", "ridge", "mean_frame",
                                         "ground_truth"}
    # the control is the same run but for the input control, and says so in run.json; both
    # training runs live where each variant's training.json points
    def run_of(variant_dir):
        pointer = json.load(open(variant_dir / "training.json"))
        return (variant_dir / pointer["run"]).resolve()

    model_run = run_of(out / "results" / "fixed_rf" / "b2p_fixedrf")
    control_run = run_of(out / "control" / "fixed_rf" / "b2p_fixedrf")
    assert model_run != control_run
    assert "TIME-SHUFFLED fMRI CONTROL" in json.load(open(control_run / "run.json"))["marks"]
    assert "TIME-SHUFFLED" not in json.dumps(json.load(open(model_run / "run.json"))["marks"])
    model_cfg = yaml.safe_load(open(model_run / "config.yaml"))
    assert model_cfg["model"]["variant"] == "fixed_rf" and model_cfg["train"]["profile"] == "demo"
    control_cfg = yaml.safe_load(open(control_run / "config.yaml"))
    assert control_cfg["train"].pop("input_control") == CONTROL.split("=")[1]
    assert model_cfg["train"].pop("input_control") == "none"
    assert control_cfg == model_cfg
    # a learning-curve point after every epoch
    assert [p["epoch"] for p in summary["curves"]["model"]] == [1, 2]
    assert [p["epoch"] for p in summary["curves"]["time-shuffled control"]] == [1, 2]

    # recomputed from the files: PixCorr inside the valid field of model, control and mean frame
    [train_path] = glob.glob(str(out / "data" / "**" / "train.h5"), recursive=True)
    with h5py.File(summary["reconstructions"], "r") as f:
        model, targets = f["reconstructions"][()], f["targets"][()].astype(np.float64)
    with h5py.File(summary["control_reconstructions"], "r") as f:
        control = f["reconstructions"][()]
    with h5py.File(train_path, "r") as f:
        mean_frame = f["frames"][()][f["samples"][()][:, 3]].astype(np.float64).mean(axis=0)
    mask = fisheye_valid_mask(targets.shape[-1], 10.0)
    for name, images in (("model", model), ("control", control),
                         ("mean_frame", [mean_frame] * len(targets))):
        by_hand = np.mean([np.corrcoef(a[:, mask].ravel(), t[:, mask].ravel())[0, 1]
                           for a, t in zip(images, targets)])
        assert check["field"][name]["pixcorr_disc"]["mean"] == pytest.approx(by_hand, rel=1e-4)
    # the last learning-curve point is the final generator: the check's PixCorr
    assert summary["curves"]["model"][-1]["pixcorr_disc"] == pytest.approx(
        check["field"]["model"]["pixcorr_disc"]["mean"], rel=1e-4)
    assert check["n_frames"] == len(targets)


def test_fig3_window_is_where_the_ground_truth_changes_most():
    """Frames 0-9 still, two cuts at 11 and 13: of the 4-frame windows, the one holding both
    cuts (frames 10-13, start 10) wins; a film shorter than the window starts at 0."""
    import numpy as np

    from brain2pix_gluon.plotting import busiest_window

    frames = np.zeros((20, 3, 4, 4), np.float32)
    frames[11:13] = 1.0           # cut at 11 (0 -> 1) and at 13 (1 -> 0)
    assert busiest_window(frames, 4) == 10
    assert busiest_window(frames[:3], 4) == 0


def test_fig3_window_stays_inside_one_clip():
    """The jump between two clips is the largest change of all, but a window across it is not a
    sequence anyone saw: with the runs given, the window holding the in-clip cut wins."""
    import numpy as np

    from brain2pix_gluon.plotting import busiest_window

    frames = np.zeros((20, 3, 4, 4), np.float32)
    frames[10:] = 1.0             # clip 2 is all white: the clip change is the largest step
    frames[4] = 0.2               # one small change inside clip 1 (steps 3->4 and 4->5)
    runs = np.repeat([0, 1], 10)
    assert busiest_window(frames, 4) == 7       # without runs: the first window over the clip change
    start = busiest_window(frames, 4, runs)
    assert start == 2                           # frames 2-5: both in-clip steps, one clip
    # no clip holds 8 frames: fall back to the busiest window overall rather than fail
    assert busiest_window(frames[:12], 8, np.arange(12)) == int(np.argmax(
        np.convolve(np.abs(np.diff(frames[:12], axis=0)).mean(axis=(1, 2, 3)), np.ones(7), "valid")))


def test_fig3_figure_draws_the_window_inside_one_clip(tmp_path):
    """consecutive_frames(start="busiest") draws the frames busiest_window picks with the clips
    the reconstruction file records."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    from brain2pix_gluon.io.reconstructions import write_reconstructions
    from brain2pix_gluon.plotting import consecutive_frames

    frames = np.zeros((20, 3, 4, 4), np.float32)
    frames[10:] = 1.0
    frames[4] = 0.2
    samples = np.zeros((20, 5), np.int64)
    samples[:, 0] = np.repeat([0, 1], 10)                     # run (clip) of each frame
    samples[:, 1] = np.tile(np.arange(10), 2) + 100           # frame number within the clip
    path = write_reconstructions(str(tmp_path / "r.h5"), frames, frames, samples, ["a", "b"], {})
    fig = consecutive_frames(path, start="busiest", count=4)
    assert [ax.get_title() for ax in fig.axes[:4]] == [f"frame {k}" for k in (102, 103, 104, 105)]
