"""Images of inputs, reconstructions and targets: grids (PNG) and side-by-side frames."""

import numpy as np

__all__ = ["input_preview", "side_by_side", "save_grid"]


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
    from PIL import Image, ImageDraw

    import textwrap

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
    tmp = path + ".partial.png"
    image.save(tmp)
    import os

    os.replace(tmp, path)
    return path
