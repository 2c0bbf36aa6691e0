"""Pictures: the paper's figures (Figs. 3-6) and the image grids written during training.

The figure functions read reconstruction files written by ``brain2pix reconstruct`` or the
experiments and return a matplotlib Figure; the grid functions turn arrays into images (input |
reconstruction | ground truth). None of them trains or evaluates anything. Every picture made from
random-weight or quick-profile results carries their marks (:mod:`brain2pix_gluon.provenance`).
"""

import os
import textwrap

import numpy as np

from .io.reconstructions import read_reconstructions
from .provenance import marks_from_attrs
from .utils import replacing

__all__ = ["busiest_window", "column_marks", "consecutive_frames", "learning_curves", "model_grid", "panel_grid", "marks_of", "evenly_spaced",
           "save_figure", "input_preview", "side_by_side", "save_grid"]


def _img(chw):
    return np.clip(np.asarray(chw).transpose(1, 2, 0), 0, 1)


def marks_of(data):
    """Marks that must appear on a figure made from a reconstruction file's ``data``."""
    return marks_from_attrs(data["attrs"])


def save_figure(fig, path, **savefig_kwargs):
    """Save a matplotlib figure as ``path`` through a temporary file (readers never see half a
    picture) and close it; returns ``path``."""
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, **savefig_kwargs)
    finally:
        plt.close(fig)
    return path


def evenly_spaced(n_frames, count):
    """``count`` frame indices spread over a test set of ``n_frames``."""
    return np.linspace(0, n_frames - 1, min(count, n_frames)).astype(int)


def column_marks(marks_by_column):
    """Marks of a figure whose columns come from different runs.

    A mark that every column carries is listed as it is; one that only some carry names them
    ("TIME-SHUFFLED fMRI CONTROL (time-shuffled control only)"), so that a figure with one control
    column does not read as if all of it were the control.

    Parameters
    ----------
    marks_by_column : dict of str -> list of str
        Column label -> the marks of that column's run.

    Returns
    -------
    list of str
    """
    sets = {label: set(marks) for label, marks in marks_by_column.items()}
    out = []
    for mark in sorted(set().union(*sets.values())):
        having = [label for label, marks in sets.items() if mark in marks]
        out.append(mark if len(having) == len(sets) else f"{mark} ({', '.join(having)} only)")
    return out


def _title(fig, text, marks, width=90):
    """The figure's title, with its marks wrapped under it (a long line would widen the figure
    far beyond its panels)."""
    import textwrap

    lines = [text]
    if marks:
        lines += textwrap.wrap("[" + ", ".join(sorted(set(marks))) + "]", width)
    fig.suptitle("\n".join(lines), fontsize=8)
    # room for the title above the panels' own titles (about 0.17 inch per line at 8 pt)
    fig.subplots_adjust(top=max(0.3, 1.0 - (0.17 * len(lines) + 0.25) / fig.get_figheight()))


def busiest_window(targets, count=8, runs=None):
    """Start of the ``count`` consecutive test frames of one run whose ground truth changes most.

    Fig. 3 shows consecutive frames; the demo and the science run pick the window by the ground truth alone (the sum
    of mean absolute differences between neighbouring frames), never by the reconstructions, so
    the figure shows scene changes a reader can follow without favouring the model.

    Parameters
    ----------
    targets : ndarray, shape (n, 3, H, W)
    count : int
    runs : ndarray of int, shape (n,), optional
        The test run (clip) of each frame. A window that spans two runs is not a sequence a viewer
        saw, and the jump between clips would otherwise win; such windows are skipped unless no
        run is ``count`` frames long.

    Returns
    -------
    int
    """
    targets = np.asarray(targets, np.float32)
    if len(targets) <= count:
        return 0
    steps = np.abs(np.diff(targets, axis=0)).mean(axis=(1, 2, 3))      # (n - 1,)
    window = np.convolve(steps, np.ones(count - 1), mode="valid")      # (n - count + 1,)
    if runs is not None:
        cuts = (np.asarray(runs)[1:] != np.asarray(runs)[:-1]).astype(float)   # (n - 1,)
        one_run = np.convolve(cuts, np.ones(count - 1), mode="valid") == 0
        if one_run.any():
            window = np.where(one_run, window, -np.inf)
    return int(np.argmax(window))


def consecutive_frames(recon_path, start=0, count=8):
    """Fig. 3: consecutive test frames, ground truth above and reconstruction below.

    ``start`` is the first frame's index, or ``"busiest"`` for the window of one clip whose ground
    truth changes most (:func:`busiest_window`).
    """
    import matplotlib.pyplot as plt

    data = read_reconstructions(recon_path)
    if isinstance(start, str) and start == "busiest":
        start = busiest_window(data["targets"], count, data.samples.run)
    stop = min(start + count, len(data["targets"]))
    idx = np.arange(start, stop)
    fig, axes = plt.subplots(2, len(idx), figsize=(1.3 * len(idx), 3), squeeze=False)
    for col, i in enumerate(idx):
        for row, (key, name) in enumerate((("targets", "GT"), ("reconstructions", "Recon."))):
            ax = axes[row, col]
            ax.imshow(_img(data[key][i]))
            ax.set_xticks([]), ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name)
        axes[0, col].set_title(f"frame {int(data.samples.frame[i])}", fontsize=7)
    _title(fig, f"{data['attrs'].get('model', '')}: consecutive frames", marks_of(data))
    return fig


def model_grid(files, indices=None, count=6):
    """Fig. 4 / Fig. 6: rows are test frames; columns the ground truth then each model.

    Parameters
    ----------
    files : dict of str -> str
        Column label -> reconstruction file (same test frames).
    """
    import matplotlib.pyplot as plt

    data = {label: read_reconstructions(path) for label, path in files.items()}
    first = next(iter(data.values()))
    indices = evenly_spaced(len(first["targets"]), count) if indices is None else np.asarray(indices)
    cols = ["GT"] + list(data)
    fig, axes = plt.subplots(len(indices), len(cols), figsize=(1.3 * len(cols), 1.3 * len(indices)),
                             squeeze=False)
    marks = column_marks({label: marks_of(d) for label, d in data.items()})
    for r, i in enumerate(indices):
        for c, label in enumerate(cols):
            ax = axes[r, c]
            image = first["targets"][i] if label == "GT" else data[label]["reconstructions"][i]
            ax.imshow(_img(image))
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                # a column is 1.3 inch wide: long labels ("ridge floor (not in the paper)") wrap
                # instead of running into the next column's title
                ax.set_title(textwrap.fill(label, 16), fontsize=8)
    _title(fig, "test reconstructions", marks)
    return fig


def panel_grid(files, indices=None, count=6):
    """Fig. 5: for each model, input | reconstruction | ground truth columns."""
    import matplotlib.pyplot as plt

    data = {label: read_reconstructions(path) for label, path in files.items()}
    first = next(iter(data.values()))
    indices = evenly_spaced(len(first["targets"]), count) if indices is None else np.asarray(indices)
    fig, axes = plt.subplots(len(indices), 3 * len(data),
                             figsize=(1.1 * 3 * len(data), 1.1 * len(indices)), squeeze=False)
    marks = column_marks({label: marks_of(d) for label, d in data.items()})
    for m, (label, d) in enumerate(data.items()):
        for r, i in enumerate(indices):
            panels = [d["input_previews"][i] / 255.0 if d["input_previews"] is not None
                      else np.zeros_like(_img(d["targets"][i])),
                      _img(d["reconstructions"][i]), _img(d["targets"][i])]
            for k, (panel, name) in enumerate(zip(panels, ("in", "re", "gt"))):
                ax = axes[r, 3 * m + k]
                ax.imshow(np.clip(panel, 0, 1))
                ax.set_xticks([]), ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"{label} {name}", fontsize=7)
    _title(fig, "reconstructions per model (in | re | gt)", marks)
    return fig


def learning_curves(curves, path, marks=(), note=""):
    """Learning curves of model and control: held-out two-way identification and PixCorr.

    Parameters
    ----------
    curves : dict of str -> list of dict
        Label (e.g. ``"model"``, ``"time-shuffled control"``) ->
        :func:`~brain2pix_gluon.evaluation.learning_check.learning_curve`.
    path : str
        PNG written here.
    marks : sequence of str
        Written in the title (random weights, quick run, control).
    note : str
        A line under the title (e.g. the simulator's noise level).

    Returns
    -------
    str
        ``path``.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = (("twoway_alexnet2", "two-way identification, AlexNet pool2", 0.5),
              ("twoway_alexnet5", "two-way identification, AlexNet pool5", 0.5),
              ("pixcorr_disc", "PixCorr inside the valid field", None))
    fig = Figure(figsize=(12, 4.2))       # no pyplot state: safe inside notebooks and threads
    axes = fig.subplots(1, 3)
    for ax, (key, title, chance) in zip(axes, panels):
        for label, curve in curves.items():
            ax.plot([p["epoch"] for p in curve], [p[key] for p in curve], marker="o", label=label)
        if chance is not None:
            ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=8)
    import textwrap

    head = ["Held-out test clips after every epoch"]
    if marks:
        head += textwrap.wrap("[" + ", ".join(sorted(set(marks))) + "]", 120)
    if note:
        head += textwrap.wrap(note, 120)
    fig.suptitle("\n".join(head), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1.0 - 0.035 * len(head)))
    return save_figure(fig, path, dpi=110)


# ---------------------------------------------------------------- image grids
def input_preview(inputs, n_rois):
    """An RGB picture of an RFSimage stack: the mean over TRs of each ROI, scaled per image.

    Parameters
    ----------
    inputs : ndarray, shape (N, R*T, S, S) or (N, R, S, S)
    n_rois : int

    Returns
    -------
    ndarray, shape (N, S, S, 3), float in [0, 1]
    """
    arr = np.asarray(inputs, np.float32)
    n, c, h, w = arr.shape
    per_roi = arr.reshape(n, n_rois, c // n_rois, h, w).mean(axis=2)
    lo = per_roi.min(axis=(1, 2, 3), keepdims=True)
    hi = per_roi.max(axis=(1, 2, 3), keepdims=True)
    scaled = (per_roi - lo) / np.maximum(hi - lo, 1e-8)
    if n_rois == 1:
        scaled = np.repeat(scaled, 3, axis=1)
    elif n_rois == 2:
        scaled = np.concatenate([scaled, np.zeros_like(scaled[:, :1])], axis=1)
    return scaled[:, :3].transpose(0, 2, 3, 1)


def side_by_side(inputs, reconstructions, targets, n_rois, gap=2):
    """Rows of input | reconstruction | ground truth.

    Parameters
    ----------
    inputs : ndarray, shape (N, C, S, S)
    reconstructions, targets : ndarray, shape (N, 3, S, S), in [0, 1]

    Returns
    -------
    ndarray, shape (N, S, 3*S + 2*gap, 3), uint8
    """
    panels = [input_preview(inputs, n_rois),
              np.asarray(reconstructions).transpose(0, 2, 3, 1),
              np.asarray(targets).transpose(0, 2, 3, 1)]
    n, s = panels[0].shape[:2]
    out = np.ones((n, s, 3 * s + 2 * gap, 3), np.float32)
    for k, panel in enumerate(panels):
        out[:, :, k * (s + gap):k * (s + gap) + s] = np.clip(panel, 0, 1)
    return (out * 255 + 0.5).astype(np.uint8)


def save_grid(path, inputs, reconstructions, targets, n_rois, title=None):
    """Save a PNG grid (one row per sample: input | reconstruction | ground truth).

    ``title`` is written in a band above the grid (used to mark random-weight runs).
    """
    import textwrap

    from PIL import Image, ImageDraw

    rows = side_by_side(inputs, reconstructions, targets, n_rois)
    gap = 2
    n, h, w, _ = rows.shape
    lines = textwrap.wrap(title, max(w // 6 - 1, 10)) if title else []
    band = 12 * len(lines) + (2 if lines else 0)
    canvas = np.full((band + n * (h + gap), w, 3), 255, np.uint8)
    for k in range(n):
        canvas[band + k * (h + gap):band + k * (h + gap) + h] = rows[k]
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for k, line in enumerate(lines):
        draw.text((2, 1 + 12 * k), line, fill=(200, 0, 0))
    with replacing(path) as tmp:
        image.save(tmp)
    return path
