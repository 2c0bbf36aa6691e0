"""One variant per job: what a cluster scheduler's array job passes to a script."""

import pytest

from brain2pix_gluon.cli import main
from brain2pix_gluon.errors import Brain2PixError
from brain2pix_gluon.experiments import select_variants


def test_variants_are_chosen_by_slug_or_label_in_table_order():
    assert [v.label for v in select_variants("ablation")] == ["Full", "No adversarial",
                                                              "No feature"]
    chosen = select_variants("ablation", ["no_feature", "Full"])
    assert [v.label for v in chosen] == ["Full", "No feature"]
    assert [v.config for v in select_variants("data_size", ["40"])] == ["data_size_40"]
    assert [v.kind for v in select_variants("baselines", ["baseline_1"])] == ["nishimoto"]


def test_an_unknown_variant_names_the_valid_ones():
    with pytest.raises(Brain2PixError, match=r"'no_pixel'.*ablation.*'no_adversarial'"):
        select_variants("ablation", ["full", "no_pixel"])


def test_script_rejects_an_unknown_variant_before_any_work(tmp_path, capsys):
    # exits before the (slow) simulated dataset is made: no data argument is needed
    assert main(["experiment", "roi", "--variant", "V4", "--out", str(tmp_path),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "'V4'" in err and "v1_3" in err
    assert list(tmp_path.iterdir()) == []


def test_one_variant_runs_alone_and_leaves_the_tables(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from test_experiments import FAST, ROOT

    env = dict(os.environ, BRAIN2PIX_DATA=str(tmp_path / "data"))
    out = tmp_path / "results"
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "run_ablation.py"), "--profile", "quick",
           "--out", str(out), "--weights", "random", "--no-progress", "--variant", "no_feature",
           "--no-tables"] + FAST
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in (out / "ablation").iterdir()) == ["no_feature",
                                                                     "summary_no_feature.json"]
    summary = json.loads((out / "ablation" / "summary_no_feature.json").read_text())
    assert [s["label"] for s in summary["variants"]] == ["No feature"]
    assert summary["tables"] == []
    assert os.path.exists(summary["variants"][0]["results"])
