"""Figure helpers for the paper-figure notebooks and the demo (Figs. 3-6).

Each function reads reconstruction files written by ``brain2pix reconstruct`` / the experiment
scripts and returns a matplotlib Figure; none of them trains or evaluates anything.
"""

import numpy as np

from .io.reconstructions import read_reconstructions

__all__ = ["consecutive_frames", "model_grid", "panel_grid", "marks_of", "evenly_spaced"]


def _img(chw):
    return np.clip(np.asarray(chw).transpose(1, 2, 0), 0, 1)


def marks_of(data):
    """Words that must appear on a figure made from ``data`` (random weights, quick run)."""
    marks = []
    weights = data["attrs"].get("weights", {})
    if isinstance(weights, dict) and any(str(v).startswith("random") for v in weights.values()):
        marks.append("random feature weights")
    if data["attrs"].get("profile") == "quick":
        marks.append("quick run")
    return marks


def evenly_spaced(n_frames, count):
    """``count`` frame indices spread over a test set of ``n_frames``."""
    return np.linspace(0, n_frames - 1, min(count, n_frames)).astype(int)


def _title(fig, text, marks):
    fig.suptitle(text + (f"  [{', '.join(sorted(set(marks)))}]" if marks else ""), fontsize=9)


def consecutive_frames(recon_path, start=0, count=8):
    """Fig. 3: consecutive test frames, ground truth above and reconstruction below."""
    import matplotlib.pyplot as plt

    data = read_reconstructions(recon_path)
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
        axes[0, col].set_title(f"frame {int(data['samples'][i, 1])}", fontsize=7)
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
    marks = []
    for label, d in data.items():
        marks += marks_of(d)
    for r, i in enumerate(indices):
        for c, label in enumerate(cols):
            ax = axes[r, c]
            image = first["targets"][i] if label == "GT" else data[label]["reconstructions"][i]
            ax.imshow(_img(image))
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=8)
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
    marks = []
    for m, (label, d) in enumerate(data.items()):
        marks += marks_of(d)
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
