"""Readers for raw datasets: ROI masks, RF centres and per-run voxel time series.

Two layouts are understood:

* the authors' processed layout: ``roimask.mat`` (keys ``V1d V1v V2d V2v V3d V3v``, boolean masks
  over the flattened voxels of a run), ``col_centers_112px.mat`` / ``row_centers_112px.mat`` (same
  keys; NaN = no estimate; one value per mask voxel, in mask order), runs as ``.npy`` arrays of
  shape (time, voxels) or (time, X, Y, Z);
* a neuroimaging user's layout: NIfTI runs (X, Y, Z, T), one NIfTI mask per key in a ``masks/``
  folder, and centres as ``.npz`` (same keys) or ``.csv`` (columns ``mask,col,row``).

A raw dataset directory holds the masks and centres at its top and two folders ``train/`` and
``test/``. ``train/run_NNN.{npy,nii,nii.gz}`` each come with a video ``train/run_NNN.<ext>``;
test clips are ``test/<clip>.npy`` (already averaged) or ``test/<clip>_rep_NN.npy`` (averaged
on read) with a video ``test/<clip>.<ext>``.
"""

import csv
import hashlib
import os
import re

import numpy as np

from ..errors import DataError, check_array
from .matlab import read_mat
from .names import MASK_KEYS

__all__ = ["MASK_KEYS", "load_roi_masks", "load_rf_centres", "load_run", "discover_runs",
           "file_checksum", "VIDEO_EXTENSIONS", "RUN_EXTENSIONS"]

VIDEO_EXTENSIONS = (".webm", ".mp4", ".avi", ".mkv", ".mov")
RUN_EXTENSIONS = (".npy", ".nii.gz", ".nii")


def file_checksum(path, chunk=1 << 23):
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _require(path, what):
    if not os.path.exists(path):
        raise DataError(f"{what}: file {path!s} does not exist")


def _load_keyed(path):
    """A mapping of key -> array from .mat or .npz."""
    if path.endswith(".mat"):
        return read_mat(path)
    if path.endswith(".npz"):
        _require(path, "array file")
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    raise DataError(f"{path!s}: expected a .mat or .npz file, got extension {os.path.splitext(path)[1]!r}")


def load_roi_masks(path):
    """Read the six ROI masks.

    Parameters
    ----------
    path : str
        ``roimask.mat``/``.npz`` or a folder holding ``V1d.nii.gz`` ... ``V3v.nii.gz``.

    Returns
    -------
    dict of str -> ndarray of bool, shape (n_brain_voxels,)
        Masks flattened in C order (the order runs are flattened in).
    """
    if os.path.isdir(path):
        import nibabel

        data = {}
        for key in MASK_KEYS:
            found = [p for p in (os.path.join(path, key + e) for e in (".nii.gz", ".nii"))
                     if os.path.exists(p)]
            if not found:
                raise DataError(f"ROI mask folder {path!s}: missing {key}.nii.gz (or .nii)")
            data[key] = np.asarray(nibabel.load(found[0]).dataobj)
    else:
        data = _load_keyed(path)
    masks = {}
    for key in MASK_KEYS:
        if key not in data:
            raise DataError(f"ROI masks {path!s}: key {key!r} missing; found keys {sorted(data)}")
        mask = np.asarray(data[key])
        if mask.dtype.kind not in "biuf":
            raise DataError(f"ROI masks {path!s}, key {key!r}: expected a boolean mask, got dtype {mask.dtype}")
        if mask.dtype.kind != "b" and not np.isin(mask, (0, 1)).all():
            raise DataError(f"ROI masks {path!s}, key {key!r}: expected only 0/1 values")
        masks[key] = mask.astype(bool).reshape(-1)
    sizes = {m.shape[0] for m in masks.values()}
    if len(sizes) != 1:
        raise DataError(f"ROI masks {path!s}: masks have different sizes "
                        f"{ {k: m.shape for k, m in masks.items()} }")
    return masks


def load_rf_centres(col_path, row_path=None, masks=None, mask_source=None):
    """Read RF centres per mask key, one value per mask voxel in mask order.

    Parameters
    ----------
    col_path : str
        ``col_centers_112px.mat``/``.npz``, or a ``.csv`` with columns ``mask,col,row``.
    row_path : str, optional
        ``row_centers_112px.mat``/``.npz`` (not needed for ``.csv``).
    masks : dict, optional
        ROI masks; centres given for every brain voxel are then reduced to the mask's voxels,
        and the lengths are checked against the masks.
    mask_source : str, optional
        File the masks came from, named when the lengths disagree.

    Returns
    -------
    cols, rows : dict of str -> ndarray of float, shape (n_mask_voxels,)
        NaN where a voxel has no estimate.
    """
    if col_path.endswith(".csv"):
        _require(col_path, "RF centre table")
        cols = {k: [] for k in MASK_KEYS}
        rows = {k: [] for k in MASK_KEYS}
        with open(col_path, newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"mask", "col", "row"} <= set(reader.fieldnames):
                raise DataError(f"RF centre table {col_path!s}: expected columns mask,col,row; "
                                f"got {reader.fieldnames}")
            for line_no, rec in enumerate(reader, start=2):
                if rec["mask"] not in cols:
                    raise DataError(f"RF centre table {col_path!s}, line {line_no}: unknown mask "
                                    f"{rec['mask']!r}; expected one of {list(MASK_KEYS)}")
                cols[rec["mask"]].append(float(rec["col"] or "nan"))
                rows[rec["mask"]].append(float(rec["row"] or "nan"))
        cols = {k: np.asarray(v, float) for k, v in cols.items()}
        rows = {k: np.asarray(v, float) for k, v in rows.items()}
        sources = (col_path, col_path)
    else:
        if row_path is None:
            raise DataError(f"RF centres: {col_path!s} holds column centres only; pass row_path")
        raw_cols, raw_rows = _load_keyed(col_path), _load_keyed(row_path)
        cols, rows = {}, {}
        for key in MASK_KEYS:
            for data, out, path in ((raw_cols, cols, col_path), (raw_rows, rows, row_path)):
                if key not in data:
                    raise DataError(f"RF centres {path!s}: key {key!r} missing; found {sorted(data)}")
                out[key] = np.asarray(data[key], dtype=float).reshape(-1)
        sources = (col_path, row_path)
    for key in MASK_KEYS:
        for values, path, name in ((cols, sources[0], "col"), (rows, sources[1], "row")):
            infinite = np.isinf(values[key])
            if infinite.any():
                raise DataError(
                    f"RF centres {path!s}, key {key!r}: {name} centre of voxel "
                    f"{int(np.argmax(infinite))} is {values[key][infinite][0]!r}; expected a value "
                    f"in [-0.5, 0.5) or NaN (no estimate)")
    if masks is not None:
        where = f" in {mask_source!s}" if mask_source else ""
        lengths = {}
        for key in MASK_KEYS:
            n_mask, n_brain = int(masks[key].sum()), masks[key].shape[0]
            for values, path in ((cols, sources[0]), (rows, sources[1])):
                if values[key].shape[0] == n_brain and n_brain != n_mask:
                    values[key] = values[key][masks[key]]
                elif values[key].shape[0] != n_mask:
                    lengths[key] = (path, values[key].shape[0], n_mask, n_brain)
        if lengths:
            # every key disagrees: the centres files belong to other masks; one key: its mask
            # (or that key of the centres) is wrong; name both files either way
            key, (path, got, n_mask, n_brain) = next(iter(lengths.items()))
            raise DataError(
                f"ROI mask {key!r}{where} selects {n_mask} of {n_brain} voxels, but RF centres "
                f"{path!s} hold {got} values for {key!r} (expected one per mask voxel, or one per "
                f"brain voxel); keys that disagree: {sorted(lengths)}. The masks and the centre "
                f"files do not belong together")
    return cols, rows


def load_run(path, finite=True):
    """Read one run's signals as (time, voxels) float32.

    Parameters
    ----------
    path : str
        ``.npy`` of shape (time, voxels) or (time, X, Y, Z), or NIfTI of shape (X, Y, Z, time).
    finite : bool
        Raise on NaN/inf anywhere. ``prepare`` passes False and checks only the voxels it uses.

    Returns
    -------
    ndarray, shape (n_volumes, n_brain_voxels), float32
    """
    _require(path, "run")
    if path.endswith(".npy"):
        try:
            arr = np.load(path, mmap_mode="r")
        except Exception as exc:
            raise DataError(f"run {path!s} could not be read as .npy: {exc}") from exc
        arr = check_array(arr, "signals", ndim=(2, 4), source=path, dtype_kind="fiu")
        if arr.shape[0] == 0:
            raise DataError(f"run {path!s}: 0 volumes (signals of shape {arr.shape}); expected "
                            f"(time, voxels) with at least one volume")
        arr = np.asarray(arr, dtype=np.float32).reshape(arr.shape[0], -1)
    else:
        import nibabel

        try:
            img = nibabel.load(path)
            data = np.asarray(img.dataobj, dtype=np.float32)
        except Exception as exc:
            raise DataError(f"run {path!s} could not be read as NIfTI: {exc}") from exc
        data = check_array(data, "signals", ndim=4, source=path)
        if data.shape[-1] == 0:
            raise DataError(f"run {path!s}: 0 volumes (NIfTI of shape {data.shape}); expected "
                            f"(X, Y, Z, time) with at least one volume")
        arr = np.ascontiguousarray(np.moveaxis(data, -1, 0)).reshape(data.shape[-1], -1)
    return check_array(arr, "signals", ndim=2, finite=finite, source=path)


def _strip_run_ext(name):
    for ext in RUN_EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)]
    return None


def _find_video(folder, stem):
    for ext in VIDEO_EXTENSIONS:
        candidate = os.path.join(folder, stem + ext)
        if os.path.exists(candidate):
            return candidate
    raise DataError(f"video for {stem!r} not found in {folder!s}: expected {stem}.<ext> with ext in "
                    f"{list(VIDEO_EXTENSIONS)}")


def discover_runs(raw_dir, split):
    """List the runs of a split.

    Parameters
    ----------
    raw_dir : str
    split : {"train", "test"}

    Returns
    -------
    list of dict
        Each ``{"name": str, "signals": [paths...], "video": path}``; test clips list all their
        repetitions (averaged by the caller), training runs exactly one file.
    """
    folder = os.path.join(raw_dir, split)
    if not os.path.isdir(folder):
        raise DataError(f"raw dataset {raw_dir!s}: folder {split}/ does not exist")
    # os.listdir, not glob: glob returns nothing for a folder it may not read ("no runs")
    groups = {}
    for path in sorted(os.path.join(folder, n) for n in os.listdir(folder)
                       if not n.startswith(".")):
        stem = _strip_run_ext(os.path.basename(path))
        if stem is None:
            continue
        match = re.match(r"^(.*)_rep_?\d+$", stem)
        key = match.group(1) if match else stem
        groups.setdefault(key, []).append(path)
    if not groups:
        raise DataError(f"raw dataset {raw_dir!s}: no runs ({'/'.join(RUN_EXTENSIONS)}) in {split}/")
    return [{"name": name, "signals": paths, "video": _find_video(folder, name)}
            for name, paths in sorted(groups.items())]


def find_first(raw_dir, names, what):
    """The first existing path among ``names`` inside ``raw_dir``."""
    for name in names:
        path = os.path.join(raw_dir, name)
        if os.path.exists(path):
            return path
    raise DataError(f"raw dataset {raw_dir!s}: {what} not found; expected one of {list(names)}")
