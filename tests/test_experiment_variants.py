"""One variant per job: what a cluster scheduler's array job passes to a script."""

import pytest

from brain2pix_gluon.errors import Brain2PixError
from brain2pix_gluon.experiments import main, select_variants


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
    assert main("roi", ["--variant", "V4", "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "'V4'" in err and "v1_3" in err
    assert list(tmp_path.iterdir()) == []
