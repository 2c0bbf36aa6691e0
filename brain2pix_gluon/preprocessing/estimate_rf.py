"""``brain2pix estimate-rf``: from a dataset on disk to the centre files that ``prepare`` reads.

The fit itself is :func:`brain2pix_gluon.preprocessing.prf.fit_prf`; this module reads the
training runs through the dataset's source (:mod:`brain2pix_gluon.io.sources`), holds the per-run
design drives and signals in temporary memory-mapped files, and writes the centres, every estimate
and a summary figure.
"""

import os
import shutil
import tempfile

import numpy as np

from ..errors import DataError
from ..io import names
from ..io.sources import open_source
from ..utils import get_logger, progress
from .prf import PRFGrid, fit_prf, model_drive

__all__ = ["estimate_rf", "write_prf_outputs", "plot_prf_summary", "prf_quality_report",
           "format_prf_quality"]


def _training_runs(source):
    """Yield (name, frames, signals of every mask voxel, mask keys in order) per training run."""
    selected = np.concatenate([source.mask_columns(k) for k in source.keys])
    for run in source.runs("train"):
        (_, signals), = source.read_signals(run)     # a training run has one repetition
        yield run["name"], source.load_frames(run), signals[:, selected]


def estimate_rf(raw_dir, out_dir=None, config=None, force=False, show_progress=True,
                keep_work=False):
    """Estimate every ROI voxel's pRF from a dataset's training runs and write the centre files.

    Parameters
    ----------
    raw_dir : str
        A raw dataset (``config.data.dataset == "raw"``, layout of :mod:`brain2pix_gluon.io.raw`)
        or a vim-2 folder (``"vim2"``, see :mod:`brain2pix_gluon.io.vim2`).
    out_dir : str, optional
        Where the outputs go (default ``raw_dir``, where ``prepare`` looks for them).
    config : Config, optional
        ``prf`` (the fit), ``data`` (frame size, fisheye) and ``vim2`` sections are used; the TR
        is the dataset's (:attr:`DatasetSource.tr`).
    force : bool
        Replace centre files that already exist in ``out_dir``.
    show_progress : bool
    keep_work : bool
        Keep the per-run drive and signal files (``out_dir/estimate-rf-work``).

    Returns
    -------
    dict of str -> str
        Kind of output -> path: ``col``, ``row`` (``col_centers_112px.mat`` /
        ``row_centers_112px.mat``), ``estimates`` (``prf_estimates.npz``), ``figure``
        (``prf_summary.png``).
    """
    from ..config import Config

    config = config or Config()
    out_dir = os.fspath(out_dir or raw_dir)
    if not os.path.isdir(raw_dir):
        raise DataError(f"estimate-rf: dataset folder {raw_dir!s} does not exist")
    paths = {kind: os.path.join(out_dir, name) for kind, name in (
        ("col", names.COL_CENTRES), ("row", names.ROW_CENTRES),
        ("estimates", names.PRF_ESTIMATES), ("figure", names.PRF_FIGURE))}
    existing = [p for p in (paths["col"], paths["row"]) if os.path.exists(p)]
    if existing and not force:
        raise DataError(f"estimate-rf: {existing} already exist; pass --force to replace them "
                        f"or choose another --out")
    PRFGrid(config.data.image_size, config.prf)   # bad grid settings fail before any reading
    source = open_source(raw_dir, config)
    n_runs = len(source.runs("train"))
    if n_runs < 2:
        raise DataError(f"estimate-rf: {raw_dir!s} has {n_runs} training run(s); leave-one-run-out "
                        f"cross-validation needs at least 2"
                        + (f" (vim2.run_volumes = {config.vim2.run_volumes})"
                           if config.data.dataset == "vim2" else ""))
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="estimate-rf-work-", dir=out_dir)
    log = get_logger()
    try:
        drives, signals = [], []
        for name, frames, run_signals in progress(_training_runs(source), total=n_runs,
                                                  desc="estimate-rf runs",
                                                  enabled=show_progress, unit="run"):
            drive = model_drive(frames, run_signals.shape[0], config.prf, config.data.max_ratio,
                                config.data.fisheye)
            n_use = drive.shape[0]
            drive_path = os.path.join(work, f"{name}_drive.npy")
            signal_path = os.path.join(work, f"{name}_signals.npy")
            np.save(drive_path, drive)
            np.save(signal_path, np.ascontiguousarray(run_signals[:n_use], dtype=np.float32))
            del drive, frames, run_signals
            drives.append(np.load(drive_path, mmap_mode="r"))
            signals.append(np.load(signal_path, mmap_mode="r"))
        fit = fit_prf(drives, signals, source.tr, config.prf, work, show_progress)
        del drives, signals
        columns = {key: source.voxel_index(key) for key in source.keys}
        written = write_prf_outputs(paths, source.keys, columns, fit, config.prf)
        report = prf_quality_report(dict(np.load(written["estimates"])), source.parts,
                                    source.part_kind, config)
        for line in format_prf_quality(report, config.data.image_size):
            log.info("%s", line)
        from .prepare import log_retinotopy

        log_retinotopy(report["retinotopy"], log)
    finally:
        if keep_work:
            log.info("estimate-rf: per-run drive and signal files kept in %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return written


def _split_by_key(keys, columns, values):
    out, start = {}, 0
    for key in keys:
        n = len(columns[key])
        out[key] = values[start:start + n]
        start += n
    return out


def write_prf_outputs(paths, keys, columns, fit, config):
    """Write centres (NaN below the R^2 threshold), the full estimates and the summary figure.

    Parameters
    ----------
    paths : dict
        ``col``, ``row``, ``estimates``, ``figure`` -> file path.
    keys : sequence of str
        ROI mask keys, in the order the fit's voxels are concatenated.
    columns : dict of str -> ndarray
        Brain-voxel index of every voxel of each key (its length is the key's voxel count).
    fit : dict of str -> ndarray, shape (n_voxels,)
        :func:`fit_prf`'s output.
    config : PRFConfig

    Returns
    -------
    dict of str -> str
    """
    from ..io.matlab import write_mat
    from ..utils import write_npz_atomic

    kept = np.isfinite(fit["r2"]) & (fit["r2"] >= config.r2_threshold)
    cols = np.where(kept, fit["x"], np.nan)
    rows = np.where(kept, fit["y"], np.nan)
    by_key = {name: _split_by_key(keys, columns, values)
              for name, values in (("col", cols), ("row", rows))}
    estimates = {}
    for name in ("x", "y", "sigma", "exponent", "r", "r2", "beta"):
        for key, values in _split_by_key(keys, columns, fit[name]).items():
            estimates[f"{key}_{name}"] = values
    if "weights" in fit:      # the multi-feature drive: one weight per feature and voxel
        from .prf import FEATURES

        for key, values in _split_by_key(keys, columns, fit["weights"]).items():
            estimates[f"{key}_weights"] = values
        estimates["features"] = np.array(FEATURES)
    for key in keys:
        estimates[f"{key}_voxel_index"] = np.asarray(columns[key])
    estimates["r2_threshold"] = np.float64(config.r2_threshold)
    estimates["drive"] = np.array(config.drive)
    write_npz_atomic(paths["estimates"], estimates)
    # one value per mask voxel, as MATLAB column vectors like the released files
    write_mat(paths["col"], {k: v[:, None] for k, v in by_key["col"].items()})
    write_mat(paths["row"], {k: v[:, None] for k, v in by_key["row"].items()})
    from ..plotting import save_figure

    save_figure(plot_prf_summary(estimates, keys, config.r2_threshold), paths["figure"], dpi=100)
    n_kept = int(kept.sum())
    get_logger().info("estimate-rf: %d of %d voxels have cross-validated R^2 >= %g; centres "
                      "written to %s and %s", n_kept, kept.size, config.r2_threshold,
                      paths["col"], paths["row"])
    return dict(paths)


# eccentricity bands (image units from the frame's centre; the frame's edge is at 0.5) in which
# the report gives the median pRF size
_ECCENTRICITY_BANDS = (0.0, 0.1, 0.2, 0.3, 0.5)


def prf_quality_report(estimates, parts, part_kind, config):
    """What can be checked of fitted pRFs without knowing the true ones, per ROI.

    * the distribution of the cross-validated R^2;
    * the orientation check that ``prepare`` makes of every centre file
      (:func:`~brain2pix_gluon.preprocessing.receptive_fields.retinotopy_report`: dorsal voxels in
      the lower visual field, ventral in the upper; for vim-2's hemispheres
      :func:`~brain2pix_gluon.preprocessing.receptive_fields.hemisphere_report`), on the voxels
      whose centres are written;
    * pRF size against eccentricity: in early visual cortex it grows with eccentricity, and from
      V1 to V2 to V3 (Dumoulin & Wandell 2008). The size is that of the compressive model's
      response to a point, ``sigma / sqrt(n)`` (Kay et al. 2013; ``sigma`` for the linear model).

    Parameters
    ----------
    estimates : dict
        ``prf_estimates.npz`` as :func:`write_prf_outputs` writes it (``{key}_x``, ``_y``,
        ``_sigma``, ``_exponent``, ``_r2``).
    parts : dict of str -> tuple of str
        ROI -> its mask keys (:attr:`DatasetSource.parts`).
    part_kind : {"dorsal_ventral", "hemisphere"}
    config : Config
        ``prf.r2_threshold``; ``data.rf_swap_axes`` / ``data.rf_flip_y`` are quoted in the advice.

    Returns
    -------
    dict
        ``rois``: per ROI ``n``, ``n_kept``, ``r2_percentiles`` (10, 25, 50, 75, 90),
        ``size_by_eccentricity`` (median size in image units per band of
        ``eccentricity_bands``, NaN for an empty band), ``size_eccentricity_rho`` (Spearman) and
        ``median_size``; ``eccentricity_bands``; ``retinotopy`` (the orientation report).
    """
    from scipy.stats import spearmanr

    from .receptive_fields import hemisphere_report, retinotopy_report

    threshold = config.prf.r2_threshold
    rois, by_part = {}, {}
    bands = np.asarray(_ECCENTRICITY_BANDS)
    for roi, keys in parts.items():
        cat = lambda name: np.concatenate([np.asarray(estimates[f"{k}_{name}"], float) for k in keys])
        r2 = cat("r2")
        kept = np.isfinite(r2) & (r2 >= threshold)
        x, y = cat("x")[kept], cat("y")[kept]
        exponent = cat("exponent")[kept] if f"{keys[0]}_exponent" in estimates else 1.0
        size = cat("sigma")[kept] / np.sqrt(exponent)
        eccentricity = np.hypot(x, y)
        band = np.digitize(eccentricity, bands[1:-1])
        finite = r2[np.isfinite(r2)]
        rho = (float(spearmanr(eccentricity, size).correlation) if kept.sum() >= 3
               and np.ptp(eccentricity) > 0 and np.ptp(size) > 0 else float("nan"))
        rois[roi] = {
            "n": int(r2.size), "n_kept": int(kept.sum()),
            "r2_percentiles": (np.percentile(finite, [10, 25, 50, 75, 90]).tolist()
                               if finite.size else [float("nan")] * 5),
            "size_by_eccentricity": [float(np.median(size[band == b])) if np.any(band == b)
                                     else float("nan") for b in range(len(bands) - 1)],
            "size_eccentricity_rho": rho,
            "median_size": float(np.median(size)) if size.size else float("nan"),
        }
        by_part[roi] = {}
        for key in keys:
            r2_key = np.asarray(estimates[f"{key}_r2"], float)
            keep = np.isfinite(r2_key) & (r2_key >= threshold)
            by_part[roi][key[len(roi):]] = (np.asarray(estimates[f"{key}_x"], float)[keep],
                                            np.asarray(estimates[f"{key}_y"], float)[keep])
    if part_kind == "hemisphere":
        retinotopy = hemisphere_report(by_part)
    else:
        retinotopy = retinotopy_report(by_part, config.data.rf_swap_axes, config.data.rf_flip_y)
    return {"rois": rois, "eccentricity_bands": list(_ECCENTRICITY_BANDS),
            "r2_threshold": threshold, "retinotopy": retinotopy}


def format_prf_quality(report, size=None):
    """Printable lines of a :func:`prf_quality_report`, without its orientation part (which
    :func:`~brain2pix_gluon.preprocessing.prepare.log_retinotopy` prints as ``prepare`` does).

    Parameters
    ----------
    report : dict
    size : int, optional
        Frame side in pixels: sizes and eccentricities are then given in pixels too.
    """
    scale, unit = (size, "px") if size else (1.0, "")
    bands = report["eccentricity_bands"]
    names = " / ".join(f"{bands[i] * scale:g}-{bands[i + 1] * scale:g}" for i in range(len(bands) - 1))
    lines = [f"pRF fits per ROI (cross-validated R^2 percentiles 10/25/50/75/90; centres written "
             f"for R^2 >= {report['r2_threshold']:g}):"]
    for roi, e in report["rois"].items():
        q = e["r2_percentiles"]
        lines.append(f"  {roi}: {e['n_kept']:>5}/{e['n']} voxels kept; R^2 "
                     + " / ".join(f"{v:.2f}" for v in q))
    lines.append(f"pRF size (sigma / sqrt(exponent){', ' + unit if unit else ''}) by eccentricity "
                 f"{names}{' ' + unit if unit else ''}; it should rise with eccentricity, and "
                 f"from V1 to V2 to V3:")
    for roi, e in report["rois"].items():
        sizes = " / ".join("-" if not np.isfinite(v) else f"{v * scale:.3g}"
                           for v in e["size_by_eccentricity"])
        rho = e["size_eccentricity_rho"]
        verdict = ("rises" if rho > 0.1 else "does not rise") if np.isfinite(rho) else "unclear"
        lines.append(f"  {roi}: {sizes} (median {e['median_size'] * scale:.3g}); Spearman rho "
                     f"{rho:+.2f} -> {verdict}")
    return lines


def plot_prf_summary(estimates, keys, r2_threshold):
    """Visual-field coverage of every ROI part and the distribution of cross-validated R^2.

    Parameters
    ----------
    estimates : dict
        ``{key}_x``, ``{key}_y``, ``{key}_sigma``, ``{key}_r2`` arrays per key.
    keys : sequence of str
    r2_threshold : float

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(keys)
    fig, axes = plt.subplots(1, n + 1, figsize=(2.6 * (n + 1), 3.0))
    for ax, key in zip(axes, keys):
        r2 = estimates[f"{key}_r2"]
        kept = np.isfinite(r2) & (r2 >= r2_threshold)
        x, y = estimates[f"{key}_x"][kept], estimates[f"{key}_y"][kept]
        size = estimates[f"{key}_sigma"][kept]
        ax.scatter(x, y, s=np.clip((size * 96) ** 2, 1, 200), c=r2[kept], cmap="viridis",
                   vmin=r2_threshold, vmax=max(r2_threshold + 1e-6, float(np.nanmax(r2, initial=0))),
                   alpha=0.5, linewidths=0)
        ax.set_xlim(-0.5, 0.5)
        ax.set_ylim(0.5, -0.5)  # y grows downwards, as the frame's rows
        ax.set_aspect("equal")
        ax.set_title(f"{key}: {int(kept.sum())}/{kept.size}", fontsize=8)
        ax.set_xlabel("x (column)", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0].set_ylabel("y (row)", fontsize=7)
    all_r2 = np.concatenate([estimates[f"{k}_r2"] for k in keys])
    finite = all_r2[np.isfinite(all_r2)]
    ax = axes[-1]
    ax.hist(finite, bins=40, color="0.4")
    ax.axvline(r2_threshold, color="r", lw=1)
    ax.set_title("cross-validated R^2", fontsize=8)
    ax.tick_params(labelsize=6)
    fig.tight_layout()
    return fig
