"""Figures a person reads: column titles stay legible."""

import numpy as np

from brain2pix_gluon.io.reconstructions import write_reconstructions
from brain2pix_gluon.plotting import model_grid


def test_model_grid_column_titles_do_not_run_into_each_other(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(0)
    frames = rng.random((3, 3, 16, 16)).astype(np.float32)
    samples = np.zeros((3, 5), np.int64)
    samples[:, 1] = np.arange(3)
    # the labels the science run's Fig. 4 uses, the longest last
    labels = ["B2P-FixedRF", "B2P-LearnedRF", "Baseline 1", "Baseline 2", "ridge floor (not in the paper)"]
    files = {}
    for k, label in enumerate(labels):
        files[label] = write_reconstructions(str(tmp_path / f"r{k}.h5"), frames, frames, samples,
                                             ["clip"], {"model": label})
    fig = model_grid(files, count=3)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    top_row = fig.axes[:len(labels) + 1]
    spans = [ax.title.get_window_extent(renderer) for ax in top_row]
    assert [ax.title.get_text().replace("\n", " ") for ax in top_row] == ["GT"] + labels
    for left, right in zip(spans, spans[1:]):
        assert left.x1 <= right.x0, (left, right)


def test_a_mark_of_one_column_names_that_column(tmp_path):
    """The floors figure puts the time-shuffled control beside the model: its mark must say it
    belongs to that column, while a mark every column carries stays plain."""
    import matplotlib

    matplotlib.use("Agg")
    from brain2pix_gluon.provenance import QUICK_RUN, TIME_SHUFFLED_CONTROL

    frames = np.random.default_rng(1).random((3, 3, 16, 16)).astype(np.float32)
    samples = np.zeros((3, 5), np.int64)
    samples[:, 1] = np.arange(3)
    attrs = {"model": {"profile": "quick"},
             "control": {"profile": "quick", "config": {"train": {"input_control": "time_shuffled"}}}}
    files = {label: write_reconstructions(str(tmp_path / f"{label}.h5"), frames, frames, samples,
                                          ["clip"], {"model": label, **a})
             for label, a in attrs.items()}
    title = " ".join(model_grid(files, count=2)._suptitle.get_text().split())
    assert f"{TIME_SHUFFLED_CONTROL} (control only)" in title
    assert QUICK_RUN in title and f"{QUICK_RUN} (" not in title
