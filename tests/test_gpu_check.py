"""benchmarks/gpu_check.py: its dry run on the CPU (so CI runs every step) and its verdicts."""

import importlib.util
import json
import os
import subprocess
import sys

import mxnet as mx
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.py")


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_runs_every_step_on_the_cpu(tmp_path):
    out = tmp_path / "check.json"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, SCRIPT, "--dry-run", "--workers", "0", "--out",
                           str(out)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    first = report["first_iteration"]
    assert set(first["cpu"]) == {"d", "g", "pixel", "adversarial", "feature"}
    assert first["agree"] and first["cpu"] == first["device"]
    assert [(c["variant"], c["precision"]) for c in report["timing"]] == \
        [("fixed_rf", "fp32"), ("learned_rf", "fp32")]
    assert all(c["s_per_iter"] > 0 for c in report["timing"])
    assert report["loader"]["samples_per_s"] > 0
    assert report["quick"]["iterations"] == 2 and report["quick"]["eval_frames"] == 4
    for line in ("[1] first-iteration losses", "AMP needs a GPU", "[3] DataLoader",
                 "[4] quick-profile epoch", "[5] evaluation", "not made in a dry run"):
        assert line in proc.stdout


def test_without_a_gpu_the_check_says_so_and_stops(tmp_path, capsys):
    if mx.context.num_gpus() > 0:
        pytest.skip("this MXNet sees a GPU")
    out = tmp_path / "check.json"
    assert _module().main(["--out", str(out)]) == 1
    assert "sees 0 GPU(s), so gpu(0) is unreachable: install mxnet-cu112" in capsys.readouterr().out
    assert json.loads(out.read_text())["status"] == "GPU unreachable"


def test_extrapolation_scales_by_the_ratio_of_peak_throughputs():
    gpu_check = _module()
    # H200 67 / RTX 2080 Ti 13.4 TFLOP/s fp32 = 5; 119,000 // 8 = 14,875 iterations
    epoch, how = gpu_check.extrapolate(0.1, "fp32", 8, "NVIDIA H200")
    assert epoch == pytest.approx(0.1 * 5.0 * 14875)
    assert how.startswith("EXTRAPOLATED") and "5.00" in how
    assert gpu_check.extrapolate(0.1, "fp32", 8, "Mystery GPU")[0] is None
