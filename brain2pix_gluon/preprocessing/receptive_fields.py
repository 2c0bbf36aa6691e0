"""Receptive-field mapping of voxels to pixels (paper eqs. 1-3; README, "Orientation").

RF centres are positions in the (fisheye-warped) frame in [-0.5, 0.5): ``x`` horizontal (-0.5 left
... +0.5 right, the ``col_centers`` files), ``y`` vertical (-0.5 top ... +0.5 bottom, the
``row_centers`` files). A voxel lands on the integer cell ``(floor((x + 0.5) S), floor((y + 0.5) S))``
and the layout says how that pair indexes the map:

* ``"aligned"`` (default): ``RFSimage[y_cell, x_cell]``, the frame's own orientation;
* ``"authors_fixed_rf"`` / ``"authors_learned_rf"`` [code!=paper]: ``map[x_cell, y_cell]``, the
  authors' ``map[int((col+.5)*96), int((row+.5)*96)]``, i.e. the transpose of an upright frame. The
  two differ only in the targets (transposed for FixedRF, upright for LearnedRF; see
  :func:`target_is_transposed`).

Overlapping voxels of one ROI are averaged (eq. 2). The mapping is a sparse voxel->pixel operator,
so any eq. 3 weights can be used instead.
"""


import numpy as np
from scipy import sparse

from ..config import RF_LAYOUTS, DataConfig
from ..errors import DataError, check_array

__all__ = ["rf_pixel_indices", "RFMapper", "render_dense_reference", "RF_LAYOUTS",
           "target_is_transposed", "retinotopy_report", "hemisphere_report",
           "format_retinotopy", "plot_rf_coverage"]

def target_is_transposed(layout):
    """True for the layout whose targets are transposed (the authors' FixedRF training)."""
    if layout not in RF_LAYOUTS:
        raise DataError(f"rf_layout: expected one of {list(RF_LAYOUTS)}, got {layout!r}")
    return layout == "authors_fixed_rf"


def rf_pixel_indices(x_centers, y_centers, size=DataConfig.image_size, layout=DataConfig.rf_layout,
                     source=None):
    """Map RF centres to integer map indices.

    Parameters
    ----------
    x_centers, y_centers : ndarray, shape (n_voxels,)
        Horizontal (``col_centers``) and vertical (``row_centers``) centres in [-0.5, 0.5).
    size : int
        Map side S.
    layout : {"aligned", "authors_fixed_rf", "authors_learned_rf"}
        "aligned": map row from y, map column from x; the authors' layouts: map row from x.
    source : str or (str, str), optional
        Where the centres came from, for error messages (one file, or the x and y files).

    Returns
    -------
    map_rows, map_cols : ndarray of int64, shape (n_voxels,)
    """
    x_src, y_src = source if isinstance(source, (tuple, list)) else (source, source)
    xs = check_array(x_centers, "RF centre x", ndim=1, finite=True, source=x_src,
                     dtype_kind="fiu").astype(float)
    ys = check_array(y_centers, "RF centre y", shape=(xs.shape[0],), finite=True,
                     source=y_src, dtype_kind="fiu").astype(float)
    for name, values, source in (("RF centre x", xs, x_src), ("RF centre y", ys, y_src)):
        bad = (values < -0.5) | (values >= 0.5)
        if bad.any():
            first = int(np.argmax(bad))
            raise DataError(
                f"{name}{' in ' + str(source) if source else ''}: expected RF centres in "
                f"[-0.5, 0.5), got {int(bad.sum())} outside (first: voxel {first} = "
                f"{values[first]!r}); centres are never wrapped silently")
    x_cell = np.floor((xs + 0.5) * size).astype(np.int64)
    y_cell = np.floor((ys + 0.5) * size).astype(np.int64)
    if layout == "aligned":
        return y_cell, x_cell
    if layout in RF_LAYOUTS:
        return x_cell, y_cell
    raise DataError(f"rf_layout: expected one of {list(RF_LAYOUTS)}, got {layout!r}")


class RFMapper:
    """Render voxel responses of one ROI as an RFSimage.

    Parameters
    ----------
    x_centers, y_centers : ndarray, shape (n_voxels,)
        RF centres x (horizontal) and y (vertical) in [-0.5, 0.5) (finite: drop voxels without
        an estimate first).
    size : int
        Map side S (96 in the paper).
    layout : {"aligned", "authors_fixed_rf", "authors_learned_rf"}
        See :func:`rf_pixel_indices`.
    operator : scipy.sparse matrix, shape (size*size, n_voxels), optional
        Eq. 3 weights to use instead of the point-RF average of eq. 2.

    Attributes
    ----------
    operator : scipy.sparse.csr_matrix, shape (size*size, n_voxels)
    counts : ndarray, shape (size, size)
        Number of voxels landing on each pixel (M in eq. 2).
    """

    def __init__(self, x_centers, y_centers, size=DataConfig.image_size, layout=DataConfig.rf_layout,
                 operator=None, source=None):
        self.size = int(size)
        self.layout = layout
        self.map_rows, self.map_cols = rf_pixel_indices(x_centers, y_centers, self.size, layout, source)
        self.n_voxels = self.map_rows.shape[0]
        pixel = self.map_rows * self.size + self.map_cols
        counts = np.bincount(pixel, minlength=self.size * self.size)
        self.counts = counts.reshape(self.size, self.size)
        if operator is None:
            weights = 1.0 / counts[pixel]
            operator = sparse.csr_matrix(
                (weights.astype(np.float32), (pixel, np.arange(self.n_voxels))),
                shape=(self.size * self.size, self.n_voxels))
        else:
            operator = sparse.csr_matrix(operator, dtype=np.float32)
            if operator.shape != (self.size * self.size, self.n_voxels):
                raise DataError(
                    f"operator: expected shape ({self.size * self.size}, {self.n_voxels}), "
                    f"got {operator.shape}")
        self.operator = operator
        self._operator_t = operator.T.tocsr()

    @property
    def mask(self):
        """Boolean map, shape (size, size): pixels that at least one voxel lands on."""
        return self.counts > 0

    def render(self, voxels):
        """Apply eq. 2 (or the given eq. 3 operator).

        Parameters
        ----------
        voxels : ndarray, shape (..., n_voxels)

        Returns
        -------
        ndarray, shape (..., size, size), float32
        """
        arr = check_array(voxels, "voxels", dtype_kind="fiu")
        if arr.ndim == 0 or arr.shape[-1] != self.n_voxels:
            raise DataError(
                f"voxels: expected last dimension {self.n_voxels} (one value per voxel of the "
                f"ROI), got shape {arr.shape}")
        lead = arr.shape[:-1]
        flat = arr.reshape(-1, self.n_voxels).astype(np.float32, copy=False)
        images = np.asarray(self._operator_t.T.dot(flat.T).T, dtype=np.float32) \
            if flat.shape[0] else np.zeros((0, self.size * self.size), np.float32)
        return images.reshape(lead + (self.size, self.size))


def render_dense_reference(voxels, map_rows, map_cols, size=DataConfig.image_size, per_volume=True):
    """Eq. 2 the way the authors' code computes it: a one-hot image per voxel, scaled and summed.

    Kept for the benchmark and as an independent check.

    Parameters
    ----------
    voxels : ndarray, shape (n_samples, n_voxels)
    map_rows, map_cols : ndarray of int, shape (n_voxels,)
    size : int
    per_volume : bool
        True: one volume at a time, ``sum_v one_hot[v] * value[v]`` (the reference's loop);
        False: the same dense product as a single BLAS call over all volumes.

    Returns
    -------
    ndarray, shape (n_samples, size, size), float32
    """
    voxels = np.asarray(voxels, np.float32)
    n_voxels = len(map_rows)
    one_hot = np.zeros((n_voxels, size, size), np.float32)
    one_hot[np.arange(n_voxels), map_rows, map_cols] = 1.0
    counts = one_hot.sum(axis=0)
    if per_volume:
        out = np.stack([(one_hot * values[:, None, None]).sum(axis=0) for values in voxels])
    else:
        out = (voxels @ one_hot.reshape(n_voxels, -1)).reshape(-1, size, size)
    out = np.where(counts > 0, out / np.maximum(counts, 1), 0.0)
    return out.astype(np.float32)


_FIX = {"flipped": "data.rf_flip_y", "wrong_axis": "data.rf_swap_axes"}


def retinotopy_report(centres, swap_axes=False, flip_y=False):
    """Where each ROI's dorsal and ventral voxels fall: a check of the RF centres' orientation.

    Dorsal V1-V3 represent the lower visual field (y > 0, below the frame's centre), ventral
    V1-V3 the upper field (y < 0). Per ROI, ``score_y`` is the mean of the fraction of dorsal
    voxels below and of ventral voxels above the centre (1 = textbook retinotopy); ``score_x`` is
    the same split along x (dorsal right, ventral left; far from 0.5 when the axes are swapped).

    Parameters
    ----------
    centres : dict of str -> dict of str -> (ndarray, ndarray)
        ``{"V1": {"d": (x, y), "v": (x, y)}, ...}``: finite centres of each part.
    swap_axes, flip_y : bool
        The settings in force (``data.rf_swap_axes``, ``data.rf_flip_y``), quoted in the advice.

    Returns
    -------
    dict
        ``{"verdict": str, "advice": str, "rois": {roi: {...}}}``; verdicts are "aligned",
        "flipped" (the split runs along y the wrong way round), "wrong_axis" (it runs along x)
        or "unclear" (no split).
    """
    rois = {}
    for roi, parts in centres.items():
        (xd, yd), (xv, yv) = (np.asarray(a, float) for a in parts["d"]), \
            (np.asarray(a, float) for a in parts["v"])
        entry = {"n_dorsal": int(xd.size), "n_ventral": int(xv.size)}
        for name, (x, y) in (("dorsal", (xd, yd)), ("ventral", (xv, yv))):
            entry[f"{name}_mean_x"] = float(x.mean()) if x.size else float("nan")
            entry[f"{name}_mean_y"] = float(y.mean()) if y.size else float("nan")
        if xd.size == 0 or xv.size == 0:
            entry.update(score_y=float("nan"), score_x=float("nan"), verdict="unclear")
            rois[roi] = entry
            continue
        score_y = 0.5 * (np.mean(yd > 0) + np.mean(yv < 0))
        score_x = 0.5 * (np.mean(xd > 0) + np.mean(xv < 0))
        entry.update(dorsal_lower=float(np.mean(yd > 0)), ventral_upper=float(np.mean(yv < 0)),
                     score_y=float(score_y), score_x=float(score_x))
        if score_y >= 0.75:
            verdict = "aligned"
        elif score_y <= 0.25:
            verdict = "flipped"
        elif abs(score_x - 0.5) >= 0.25:
            verdict = "wrong_axis"
        else:
            verdict = "unclear"
        entry["verdict"] = verdict
        rois[roi] = entry
    verdicts = [e["verdict"] for e in rois.values()]
    overall = next((v for v in ("wrong_axis", "flipped", "unclear") if v in verdicts), "aligned")
    current = {"data.rf_swap_axes": bool(swap_axes), "data.rf_flip_y": bool(flip_y)}
    if overall in _FIX:
        key = _FIX[overall]
        advice = (f"set {key}={str(not current[key]).lower()} (now {str(current[key]).lower()}) "
                  f"and prepare again")
    elif overall == "unclear":
        advice = ("dorsal and ventral voxels do not separate: check that the RF centre files "
                  "belong to these masks")
    else:
        advice = ""
    return {"verdict": overall, "advice": advice, "rois": rois, "settings": current}


def hemisphere_report(centres):
    """Where each ROI's left- and right-hemisphere voxels fall: vim-2's orientation check.

    The left hemisphere represents the right visual field (x > 0) and the right hemisphere the
    left field (x < 0). ``score_x`` is the mean of the fraction of left-hemisphere voxels right
    of the centre and of right-hemisphere voxels left of it (1 = textbook; the dorsal/ventral
    check of :func:`retinotopy_report` does not apply to hemisphere parts).

    Parameters
    ----------
    centres : dict of str -> dict of str -> (ndarray, ndarray)
        ``{"V1": {"lh": (x, y), "rh": (x, y)}, ...}``: finite centres of each hemisphere.

    Returns
    -------
    dict
        ``{"kind": "hemisphere", "verdict": str, "advice": str, "rois": {roi: {...}}}``; verdicts
        "aligned" (score >= 0.75), "mirrored" (<= 0.25: x runs the wrong way) or "unclear".
    """
    rois = {}
    for roi, parts in centres.items():
        xl, xr = (np.asarray(parts[side][0], float) for side in ("lh", "rh"))
        entry = {"n_lh": int(xl.size), "n_rh": int(xr.size),
                 "lh_mean_x": float(xl.mean()) if xl.size else float("nan"),
                 "rh_mean_x": float(xr.mean()) if xr.size else float("nan")}
        if xl.size == 0 or xr.size == 0:
            entry.update(score_x=float("nan"), verdict="unclear")
        else:
            score = 0.5 * (np.mean(xl > 0) + np.mean(xr < 0))
            entry.update(lh_right=float(np.mean(xl > 0)), rh_left=float(np.mean(xr < 0)),
                         score_x=float(score),
                         verdict="aligned" if score >= 0.75 else
                         "mirrored" if score <= 0.25 else "unclear")
        rois[roi] = entry
    verdicts = [e["verdict"] for e in rois.values()]
    overall = next((v for v in ("mirrored", "unclear") if v in verdicts), "aligned")
    advice = {"aligned": "",
              "mirrored": "left-hemisphere voxels sit in the left visual field: the frames or "
                          "the centres are mirrored left-right",
              "unclear": "the hemispheres do not separate along x: check that the centre files "
                         "were estimated for this subject"}[overall]
    return {"kind": "hemisphere", "verdict": overall, "advice": advice, "rois": rois}


def format_retinotopy(report):
    """Printable lines of a :func:`retinotopy_report` or :func:`hemisphere_report` (the last one
    a WARNING when not aligned)."""
    if report.get("kind") == "hemisphere":
        return _format_hemispheres(report)
    lines = ["retinotopy (x: -0.5 left .. +0.5 right, y: -0.5 top .. +0.5 bottom; "
             "dorsal should be lower, y > 0):"]
    for roi, e in report["rois"].items():
        lines.append(
            f"  {roi}: dorsal {e['n_dorsal']:>5} voxels mean (x {e['dorsal_mean_x']:+.3f}, "
            f"y {e['dorsal_mean_y']:+.3f}), {100 * e.get('dorsal_lower', float('nan')):5.1f}% "
            f"lower | ventral {e['n_ventral']:>5} voxels mean (x {e['ventral_mean_x']:+.3f}, "
            f"y {e['ventral_mean_y']:+.3f}), {100 * e.get('ventral_upper', float('nan')):5.1f}% "
            f"upper -> {e['verdict']}")
    if report["verdict"] == "aligned":
        lines.append("  verdict: aligned (dorsal voxels in the lower field, ventral in the upper)")
    else:
        what = {"flipped": "the dorsal/ventral split runs along y but upside down",
                "wrong_axis": "the dorsal/ventral split runs along x: the centre files' axes look "
                              "swapped",
                "unclear": "no dorsal/ventral split"}[report["verdict"]]
        lines.append(f"  WARNING: {report['verdict']}: {what}; {report['advice']}")
    return lines


def _format_hemispheres(report):
    lines = ["retinotopy by hemisphere (x: -0.5 left .. +0.5 right; the left hemisphere should "
             "see the right field, x > 0):"]
    for roi, e in report["rois"].items():
        lines.append(
            f"  {roi}: lh {e['n_lh']:>5} voxels mean x {e['lh_mean_x']:+.3f}, "
            f"{100 * e.get('lh_right', float('nan')):5.1f}% right | rh {e['n_rh']:>5} voxels mean "
            f"x {e['rh_mean_x']:+.3f}, {100 * e.get('rh_left', float('nan')):5.1f}% left "
            f"-> {e['verdict']}")
    if report["verdict"] == "aligned":
        lines.append("  verdict: aligned (left-hemisphere voxels in the right visual field)")
    else:
        lines.append(f"  WARNING: {report['verdict']}: {report['advice']}")
    return lines


def plot_rf_coverage(path, centres, n_dorsal, frame=None, report=None):
    """Draw each ROI's RF centres over a warped frame and save the figure as PNG.

    Dorsal voxels are drawn in orange, ventral in cyan; with aligned centres the orange points
    fill the lower half of each panel. With a :func:`hemisphere_report` (vim-2) the two colours are
    the left and right hemisphere, and the orange points fill the right half. Axes are the
    frame's own: x to the right, y downwards.

    Parameters
    ----------
    path : str
        Output ``.png``.
    centres : dict of str -> ndarray, shape (n_roi_voxels, 2)
        (x, y) per voxel, dorsal voxels first (the prepared file's ``/rf_centres``).
    n_dorsal : dict of str -> int
        Dorsal voxels per ROI (left-hemisphere voxels with a hemisphere report).
    frame : ndarray, shape (3, S, S) or (S, S, 3), optional
        Background (a warped target frame in [0, 1]).
    report : dict, optional
        :func:`retinotopy_report` output, whose verdicts go into the titles.

    Returns
    -------
    str
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_hemisphere = bool(report) and report.get("kind") == "hemisphere"
    first, second = ("left hemisphere", "right hemisphere") if by_hemisphere else ("dorsal", "ventral")
    rois = list(centres)
    fig, axes = plt.subplots(1, len(rois), figsize=(3.4 * len(rois), 3.6), squeeze=False)
    for ax, roi in zip(axes[0], rois):
        if frame is not None:
            img = np.asarray(frame, np.float32)
            img = img.transpose(1, 2, 0) if img.shape[0] == 3 else img
            ax.imshow(np.clip(img, 0, 1), extent=(-0.5, 0.5, 0.5, -0.5), alpha=0.6)
        xy = np.asarray(centres[roi], float)
        nd = int(n_dorsal[roi])
        ax.scatter(xy[:nd, 0], xy[:nd, 1], s=4, c="tab:orange", label=first)
        ax.scatter(xy[nd:, 0], xy[nd:, 1], s=4, c="tab:cyan", label=second)
        ax.axhline(0, color="w", lw=0.8)
        ax.axvline(0, color="w", lw=0.8)
        ax.set_xlim(-0.5, 0.5)
        ax.set_ylim(0.5, -0.5)  # y grows downwards, as in the frame
        verdict = report["rois"].get(roi, {}).get("verdict", "") if report else ""
        ax.set_title(f"{roi}  {verdict}")
        ax.set_xlabel("x (left -> right)")
        ax.set_ylabel("y (top -> bottom)")
    axes[0][0].legend(loc="upper right", fontsize=7, markerscale=2)
    fig.suptitle("RF centres over a warped frame (" + ("the left hemisphere should fill the right "
                 "half" if by_hemisphere else "dorsal should fill the lower half") + ")", fontsize=9)
    fig.tight_layout()
    from ..plotting import save_figure

    return save_figure(fig, path, dpi=110)
