"""``brain2pix experiment all``: every experiment in one run with its findings table; identical
variants trained once; a run killed with SIGKILL and started again ends with the same numbers as
an uninterrupted one, and leaves no worker behind."""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import TINY, layered

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# tiny and fast: 32x32 frames, short runs, two training steps per epoch, 6 evaluated frames
FAST = layered(TINY, ["simulation.volumes_per_run=40", "train.epochs=2",
                     "train.max_steps_per_epoch=2", "evaluation.max_frames=6",
                     "evaluation.batch_size=6"])


def _command(out):
    return [sys.executable, "-m", "brain2pix_gluon.cli", "experiment", "all", "--profile",
            "quick", "--out", str(out), "--weights", "random", "--no-progress"] + FAST


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and one killed (SIGKILL, whole process group) once its first
    training has finished and then run again; both on the same simulated data."""
    root = tmp_path_factory.mktemp("science")
    env = dict(os.environ, BRAIN2PIX_DATA=str(root / "data"), PYTHONUNBUFFERED="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    whole = subprocess.run(_command(root / "whole"), capture_output=True, text=True, env=env,
                           timeout=1500)
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]
    killed_out = root / "killed"
    log = open(root / "killed.log", "w")
    proc = subprocess.Popen(_command(killed_out), stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        text = open(root / "killed.log").read()
        if "training 1 of" in text and " done in " in text:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()
    proc.kill()                                   # SIGKILL to the run itself, not its group
    proc.wait()
    log.close()
    time.sleep(3.0)
    alive = []
    for pid in children:
        try:
            os.kill(int(pid), 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    resumed = subprocess.run(_command(killed_out), capture_output=True, text=True, env=env,
                             timeout=1500)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return {"whole": root / "whole", "killed": killed_out, "log": whole.stderr,
            "stdout": whole.stdout,
            "workers": children, "leftovers": alive, "resumed_stdout": resumed.stdout,
            "killed_log": open(root / "killed.log").read()}


def _json(path):
    with open(path) as handle:
        return json.load(handle)


def test_all_writes_tables_figures_and_every_finding(runs):
    out = runs["whole"]
    findings = _json(out / "findings.json")
    assert [f["id"] for f in findings["findings"]] == [f"F{k}" for k in range(1, 9)]
    for f in findings["findings"]:
        assert set(f["verdicts"]) == {"paper", "pixels"}
        assert all(v in ("holds", "does not hold", "not testable here")
                   for v in f["verdicts"].values())
    assert "QUICK RUN" in findings["marks"]
    md = open(out / "findings.md").read()
    assert all(f"| **F{k}** |" in md for k in range(1, 9)) and "learning check" in md
    tables = open(out / "tables" / "tables.md").read()
    assert all(f"Table {k}." in tables for k in (1, 3, 5, 7))
    for name in ("fig3", "fig4", "fig5", "fig6", "floors"):
        with open(out / "figures" / f"{name}.png", "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    summary = _json(out / "science_summary.json")
    assert summary["seconds"] > 0 and summary["jobs"] >= 1
    # one line per unit with the time left
    assert "training 1 of" in runs["log"] and "ETA of the trainings" in runs["log"]
    assert findings["learning_check"]["criteria"]


def test_all_writes_its_results_page_and_prints_its_path_first(runs):
    """make science ends with OUT/report.html, its path the first line printed, no gap."""
    page = runs["whole"] / "report.html"
    assert runs["stdout"].splitlines()[0].startswith(f"report          {page}")
    assert "gap:" not in runs["log"]
    text = page.read_text()
    assert "The paper's findings, tested on this run" in text and "SCIENCE RUN" not in text
    assert "QUICK RUN" in text and all(f"Table {k}." in text for k in range(1, 9))
    for figure in ("Fig. 3", "Fig. 4", "Fig. 5", "Fig. 6", "Floors"):
        assert f'data-name="{figure}"' in text, figure


def test_identical_variants_share_one_training(runs):
    """FixedRF, V1-3, full (and, with these settings, 100 %) are one model on one data: one
    run in OUT/trainings, trained once; V1 alone is another."""
    out = runs["whole"]

    def run_of(experiment, variant):
        pointer = _json(out / experiment / variant / "training.json")
        return (out / experiment / variant / pointer["run"]).resolve()

    shared = {run_of(*v) for v in (("fixed_rf", "b2p_fixedrf"), ("roi", "v1_3"),
                                   ("ablation", "full"), ("data_size", "100"))}
    assert len(shared) == 1
    [run] = shared
    with open(run / "log.jsonl") as handle:
        assert [json.loads(line)["epoch"] for line in handle] == [1, 2]
    assert run_of("roi", "v1") != run and run_of("roi", "v1").parent == run.parent
    # ... and evaluated once: the others take the per-frame metrics of the same reconstructions
    evaluations = [_json(out / e / v / "eval" / "results.json")
                   for e, v in (("fixed_rf", "b2p_fixedrf"), ("roi", "v1_3"), ("ablation", "full"),
                                ("data_size", "100"))]
    assert sum(r["per_frame_metrics_from"] == "computed" for r in evaluations) == 1
    assert len({r["reconstructions_sha256"] for r in evaluations}) == 1
    assert len({json.dumps(r["metrics"], sort_keys=True) for r in evaluations}) == 1
    assert {r["experiment"] for r in evaluations} == {"baseline", "roi", "ablation", "data_size"}
    units = _json(out / "science_summary.json")["units"]
    trained = [u for u in units if u["stage"] == "train" and u["status"].get("key")]
    keys = [u["status"]["key"] for u in trained]
    assert len(keys) == len(set(keys))           # no training unit ran twice


def test_a_killed_run_resumes_to_the_same_numbers_and_leaves_no_worker(runs):
    assert len(runs["workers"]) >= 2                # the workers were there ...
    assert runs["leftovers"] == [], runs["leftovers"]       # ... and died with the run
    assert "training 1 of" in runs["killed_log"]
    whole, killed = _json(runs["whole"] / "findings.json"), _json(runs["killed"] / "findings.json")
    for key in ("findings", "means", "recognition"):
        assert whole[key] == killed[key], key
    assert whole["learning_check"]["criteria"] == killed["learning_check"]["criteria"]
    # the resumed run's wall time is its own, and it says so
    resumed = _json(runs["killed"] / "science_summary.json")
    finished_before = [u["unit"] for u in resumed["units"] if "done before" in (
        [u["status"]["evaluation"]] if u["stage"] == "evaluate" else
        [v for k, v in u["status"].items() if k != "evaluation"])]
    assert resumed["units_done_before"] == len(finished_before) >= 1
    assert _json(runs["whole"] / "science_summary.json")["units_done_before"] == 0
    assert (f"this invocation only: {len(finished_before)} of {len(resumed['units'])} units"
            in runs["resumed_stdout"])
    for experiment in ("fixed_rf", "ablation", "data_size"):
        for variant in os.listdir(runs["whole"] / experiment):
            path = os.path.join(experiment, variant, "eval", "per_frame.csv")
            if os.path.exists(runs["whole"] / path):
                assert open(runs["whole"] / path).read() == open(runs["killed"] / path).read()


def test_all_refuses_what_belongs_to_one_experiment(tmp_path, capsys):
    from brain2pix_gluon.cli import main

    assert main(["experiment", "all", "--out", str(tmp_path), "--variant", "v1"]) == 2
    assert "--variant picks variants of one experiment" in capsys.readouterr().err
    assert main(["experiment", "roi", "--out", str(tmp_path), "--jobs", "2"]) == 2
    assert "--jobs is for `experiment all`" in capsys.readouterr().err


def test_the_training_key_is_the_model_and_the_data(prepared_dir, tmp_path, config):
    """Labels, bookkeeping and evaluation settings leave the key alone; a setting that changes
    the model, or other data, gives another."""
    import shutil

    from brain2pix_gluon.config import apply_overrides
    from brain2pix_gluon.experiments.runner import training_key

    train = os.path.join(prepared_dir, "train.h5")
    key = training_key(config, train)
    same = apply_overrides(config, ["name=roi_V1_3", "train.grid_samples=2",
                                    "train.save_weights_every=0", "evaluation.max_frames=7",
                                    "train.num_workers=2", "simulation.seed=9"])
    assert training_key(same, train) == key and len(key) == 16
    for change in ("train.lr=0.001", "train.epochs=3", "loss.feature_weight=0",
                   "data.rois=V1", "train.input_control=time_shuffled"):
        assert training_key(apply_overrides(config, [change]), train) != key, change
    # the same file under another name is the same data; other data are another key
    copy = tmp_path / "copy.h5"
    shutil.copy(train, copy)
    assert training_key(config, str(copy)) == key
    assert training_key(config, os.path.join(prepared_dir, "test.h5")) != key


class _DiesOnArrival:
    """Unpickled in the worker as a call of os._exit: the worker ends without an answer, as one
    killed by the out-of-memory killer does."""

    def __reduce__(self):
        return os._exit, (9,)


def test_a_worker_that_dies_is_named_with_its_unit_and_how_to_resume():
    import logging

    from brain2pix_gluon.errors import TrainingError
    from brain2pix_gluon.experiments import science

    unit = science.Unit("ablation", "No adversarial", "evaluate", 1.0)
    args = (_DiesOnArrival(), "out", "quick", [], "random", "", False)
    with pytest.raises(TrainingError) as info:
        science._execute([unit], 2, args, logging.getLogger("test"), "evaluation")
    message = str(info.value)
    assert "ablation / No adversarial" in message and "ended abruptly" in message
    assert "run the same command again to resume or with `--jobs 1`" in message
