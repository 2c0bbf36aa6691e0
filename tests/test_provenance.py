"""The one vocabulary of weight sources and output marks."""

import numpy as np

from brain2pix_gluon.io.reconstructions import write_reconstructions
from brain2pix_gluon.plotting import consecutive_frames
from brain2pix_gluon.provenance import (QUICK_RUN, RANDOM_SOURCE, TIME_SHUFFLED_CONTROL,
                                        caption_suffix, is_random, marks_from_attrs, run_marks)


def test_marks_name_the_role_of_each_random_network():
    assert is_random(RANDOM_SOURCE) and not is_random("pretrained (vgg19)") and not is_random(None)
    assert is_random({"a": "pretrained", "b": RANDOM_SOURCE})
    marks = run_marks({"feature_loss": RANDOM_SOURCE, "evaluation": "pretrained (alexnet)"}, "quick")
    assert marks == [QUICK_RUN, "RANDOM FEATURE-LOSS WEIGHTS (VGG-19)"]
    # baseline 1's C3D is an encoding-feature net, not a loss
    assert run_marks({"encoding_features": RANDOM_SOURCE}) == [
        "RANDOM ENCODING-FEATURE WEIGHTS (C3D of baseline 1)"]
    # a network that was not used (None) and pretrained ones leave no mark; paper profile neither
    assert run_marks({"feature_loss": None, "evaluation": "file (x.params)"}, "paper") == []
    assert run_marks({"some_new_net": RANDOM_SOURCE}) == ["RANDOM WEIGHTS (some_new_net)"]


def test_marks_from_file_attributes_and_captions():
    assert marks_from_attrs({"marks": ["B", "A", "B"]}) == ["A", "B"]
    assert marks_from_attrs({"weights": {"feature_loss": RANDOM_SOURCE}, "profile": "paper"}) == [
        "RANDOM FEATURE-LOSS WEIGHTS (VGG-19)"]
    # a time-shuffled control is marked, from its setting or from the config a file records
    assert run_marks({}, "paper", "time_shuffled") == [TIME_SHUFFLED_CONTROL]
    assert run_marks({}, "paper", "none") == []
    assert marks_from_attrs({"config": {"train": {"input_control": "time_shuffled"}}}) == [
        TIME_SHUFFLED_CONTROL]
    assert caption_suffix([]) == ""
    assert caption_suffix([QUICK_RUN]) == " [QUICK RUN: not comparable to the paper's numbers]"


def test_figures_carry_the_marks(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.random((4, 3, 16, 16)).astype(np.float32)
    samples = np.zeros((4, 5), np.int64)
    samples[:, 1] = np.arange(4)
    path = write_reconstructions(str(tmp_path / "r.h5"), frames, frames, samples, ["clip"],
                                 {"model": "m", "weights": {"feature_loss": RANDOM_SOURCE},
                                  "profile": "quick"})
    title = consecutive_frames(path, 0, 3)._suptitle.get_text()
    assert "RANDOM FEATURE-LOSS WEIGHTS (VGG-19)" in title and QUICK_RUN in title
