"""``brain2pix inspect``: a prepared dataset described in words and its RF coverage drawn."""

import os

from .errors import DataError

__all__ = ["split_paths", "format_prepared", "rf_coverage_figure"]


def split_paths(path):
    """The split files of a prepared folder (``train.h5``, ``test.h5``), or ``[path]`` for a file."""
    if not os.path.isdir(path):
        return [path]
    paths = [os.path.join(path, f"{s}.h5") for s in ("train", "test")
             if os.path.exists(os.path.join(path, f"{s}.h5"))]
    if not paths:
        raise DataError(f"{path}: no train.h5 or test.h5 inside; expected a folder written by "
                        f"`brain2pix prepare`")
    return paths


def format_prepared(info):
    """Lines describing a prepared split.

    Parameters
    ----------
    info : dict
        :func:`brain2pix_gluon.io.prepared.describe_prepared`.

    Returns
    -------
    list of str
    """
    from .preprocessing.receptive_fields import format_retinotopy

    lines = [
        f"== {info['file']}  ({info['split']}, {info['bytes'] / 1e6:.1f} MB, schema "
        f"v{info['schema_version']}, brain2pix_gluon {info['package_version']}, "
        f"created {info['created']})",
        f"   samples {info['n_samples']}, runs {len(info['runs'])}, ROIs "
        f"{', '.join(info['rois'])}, frames dropped at run ends {info['n_dropped']}, "
        f"{info['bytes_per_1000_samples'] / 1e6:.1f} MB per 1,000 samples"]
    for name, d in sorted(info["datasets"].items()):
        lines.append(f"   /{name:<18} {str(tuple(d['shape'])):<24} {d['dtype']:<8} "
                     f"{d['compression'] or '':<5}{' fletcher32' if d.get('fletcher32') else ''}")
    cfg = info["config"]
    lines.append(f"   data config: shift {cfg.get('shift')}, window {cfg.get('n_trs')} TRs, size "
                 f"{cfg.get('image_size')}, fisheye {cfg.get('fisheye')} (max_ratio "
                 f"{cfg.get('max_ratio')}), rf_layout {cfg.get('rf_layout', 'unknown (older file)')}, "
                 f"rf_swap_axes {cfg.get('rf_swap_axes')}, rf_flip_y {cfg.get('rf_flip_y')}")
    lines.append(f"   sources: {len(info['sources'])} files with sha256 checksums")
    report = info.get("retinotopy")
    if report is None:
        lines.append("   retinotopy: not recorded (file prepared by an older version)")
    else:
        lines.extend("   " + line for line in format_retinotopy(report))
    return lines


def rf_coverage_figure(path, out):
    """Draw each ROI's RF centres (first part / second part) over the first warped frame.

    Parameters
    ----------
    path : str
        A prepared split.
    out : str
        PNG to write.
    """
    from .io.prepared import PreparedSplit
    from .preprocessing.receptive_fields import plot_rf_coverage

    split = PreparedSplit(path)
    report = split.retinotopy
    if report is None:
        raise DataError(f"{path}: no retinotopy record (prepared by an older version); "
                        f"prepare it again to draw the coverage figure")
    with split.arrays(()) as arrays:
        frame = arrays.frames(0).astype("float32") if split.n_frames else None
    # the first part of each ROI: dorsal voxels (raw layout), left hemisphere (vim-2)
    first = "n_lh" if report.get("kind") == "hemisphere" else "n_dorsal"
    n_first = {roi: report["rois"][roi][first] for roi in split.rois}
    plot_rf_coverage(out, split.rf_centres(), n_first, frame, report)
    return out
