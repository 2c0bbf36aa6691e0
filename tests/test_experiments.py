"""The seven experiment scripts end to end (quick profile, tiny simulated data), the notebooks on
their results, and skipping of finished work on a rerun."""

import json
import os
import subprocess
import sys

import pytest

from brain2pix_gluon.provenance import random_mark

from conftest import TINY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["run_synthetic", "run_fixed_rf", "run_learned_rf", "run_baselines", "run_roi",
           "run_ablation", "run_data_size"]
# tiny and fast: 32x32 frames, two short runs, one training step per epoch, 6 evaluated frames
FAST = TINY + ["simulation.volumes_per_run=40", "train.epochs=1", "train.max_steps_per_epoch=1",
               "evaluation.max_frames=6", "evaluation.batch_size=6"]


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
    for status in summary["variants"]:
        assert os.path.exists(status["reconstructions"])
        res = json.load(open(status["results"]))
        assert res["n_frames"] == 6 and len(res["metrics"]) == 12
    assert os.path.exists(os.path.join(results["out"], experiment, "tables", "tables.md"))
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
    assert set(res["baselines"]) == {"Baseline 1", "Baseline 2", "Baseline 3"}
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
    if notebook.startswith("fig"):
        figure = os.path.join(results["out"], notebook[:4] + ".png")
        assert os.path.getsize(figure) > 5000


def test_notebook_pairs_are_in_sync():
    import jupytext

    for name in ("fig3_consecutive_frames", "fig4_baselines", "fig5_roi", "fig6_data_size", "tables"):
        py = jupytext.read(os.path.join(ROOT, "notebooks", f"{name}.py"))
        ipynb = jupytext.read(os.path.join(ROOT, "notebooks", f"{name}.ipynb"))
        assert [c.source for c in py.cells] == [c.source for c in ipynb.cells], name


def test_demo_writes_every_output_and_the_learning_check(tmp_path):
    from brain2pix_gluon.demo import LEARNING_CHECK, run_demo

    summary = run_demo(str(tmp_path / "demo"), "random", FAST, show_progress=False)
    for key in ("table", "figure", "gif", "mp4", "reconstructions", "results"):
        assert os.path.getsize(summary[key]) > 0, key
    assert summary["learning_check_overrides"] == list(LEARNING_CHECK)
    assert "QUICK RUN" in summary["marks"]

    # the learning check recomputed from the files on disk: the synthetic experiment's
    # reconstructions and the mean of the prepared training frames, PixCorr and SSIM by hand
    import glob

    import h5py
    import numpy as np
    from test_evaluation import _ssim_by_hand

    [recon_path] = glob.glob(str(tmp_path / "demo" / "results" / "synthetic" / "*" / "recon" /
                                 "reconstructions.h5"))
    [train_path] = glob.glob(str(tmp_path / "demo" / "data" / "**" / "train.h5"), recursive=True)
    with h5py.File(recon_path, "r") as f:
        recon, targets = f["reconstructions"][()].astype(np.float64), f["targets"][()].astype(np.float64)
    with h5py.File(train_path, "r") as f:
        mean_frame = f["frames"][()].astype(np.float64).mean(axis=0)
    gray = lambda x: 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]  # noqa: E731
    expected = {}
    for name, images in (("model", recon), ("mean_frame", [mean_frame] * len(targets))):
        expected[name] = {
            "pixcorr": np.mean([np.corrcoef(a.ravel(), t.ravel())[0, 1] for a, t in zip(images, targets)]),
            "ssim": np.mean([_ssim_by_hand(gray(a), gray(t)) for a, t in zip(images, targets)])}
    learned = all(expected["model"][k] > expected["mean_frame"][k] for k in ("pixcorr", "ssim"))
    saved = json.load(open(tmp_path / "demo" / "demo_summary.json"))
    comparison = saved["synthetic_vs_mean_frame"]
    assert comparison["n_frames"] == len(targets)
    for name in ("model", "mean_frame"):
        for key in ("pixcorr", "ssim"):
            assert comparison[name][key] == pytest.approx(expected[name][key], rel=1e-4), (name, key)
    assert saved["learned"] is learned
