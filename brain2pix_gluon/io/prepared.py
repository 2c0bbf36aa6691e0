"""The prepared-dataset HDF5 schema: the only module that writes or reads its layout.

One file per split (``train.h5``, ``test.h5``)::

    /frames             float16 (n_frames, 3, S, S)     warped target frames in [0, 1], NCHW
    /rf_images          float32 (n_volumes, n_rois, S, S) per-volume RFSimage of each ROI (eq. 2)
    /voxels/<ROI>       float32 (n_volumes, n_roi_voxels) z-scored voxels, dorsal then ventral
    /rf_centres/<ROI>   float32 (n_roi_voxels, 2)       RF centre (col, row) in [-0.5, 0.5)
    /samples            int64   (n_samples, 5)          run, frame, first_volume, frame_row,
                                                          volume_row
    /runs/names         str     (n_runs,)
    /runs/n_volumes     int64   (n_runs,)
    /runs/n_frames      int64   (n_runs,)               frames stored per run
    attributes          schema_version, split, package_version, config (JSON), sources (JSON of
                        file -> sha256), rois, image_size, n_dropped, created, complete

``frame_row`` indexes ``/frames``; ``volume_row`` is the row of the sample's first volume in
``/rf_images`` and ``/voxels``; the 5-TR stacks are built on read (rows volume_row ...
volume_row + n_trs - 1), never stored five times. Files are written under ``<name>.partial`` and
renamed only when complete.
"""

import json
import os
import time

import numpy as np

from ..errors import DataError

__all__ = ["SCHEMA_VERSION", "SAMPLE_FIELDS", "PreparedWriter", "open_prepared", "check_prepared",
           "describe_prepared"]

SCHEMA_VERSION = 1
SAMPLE_FIELDS = ("run", "frame", "first_volume", "frame_row", "volume_row")


def _filters(compression):
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf"}
    return {}


class PreparedWriter:
    """Append runs to a split file, atomically.

    Parameters
    ----------
    path : str
        Final file name, e.g. ``OUT/train.h5``.
    rois : sequence of str
    n_voxels : sequence of int
        Voxels per ROI.
    centres : dict of str -> ndarray, shape (n_roi_voxels, 2)
    image_size : int
    attrs : dict
        Provenance attributes (JSON-serialisable values are stored as JSON strings).
    compression : {"lzf", "gzip", "none"}

    Use as a context manager: on an exception the partial file is removed and nothing named
    ``path`` is created.
    """

    def __init__(self, path, rois, n_voxels, centres, image_size, attrs, compression="lzf"):
        import h5py

        self.path = os.fspath(path)
        self.partial = self.path + ".partial"
        if os.path.exists(self.partial):
            os.remove(self.partial)
        self.rois = tuple(rois)
        self.size = int(image_size)
        self.file = h5py.File(self.partial, "w")
        f = self.file
        filters = _filters(compression)
        s = self.size
        f.create_dataset("frames", (0, 3, s, s), np.float16, maxshape=(None, 3, s, s),
                         chunks=(8, 3, s, s), **filters)
        f.create_dataset("rf_images", (0, len(self.rois), s, s), np.float32,
                         maxshape=(None, len(self.rois), s, s), chunks=(4, len(self.rois), s, s),
                         **filters)
        for roi, n in zip(self.rois, n_voxels):
            f.create_dataset(f"voxels/{roi}", (0, n), np.float32, maxshape=(None, n),
                             chunks=(max(1, min(256, (1 << 18) // max(n, 1))), n), **filters)
            f.create_dataset(f"rf_centres/{roi}", data=np.asarray(centres[roi], np.float32))
        f.create_dataset("samples", (0, len(SAMPLE_FIELDS)), np.int64,
                         maxshape=(None, len(SAMPLE_FIELDS)), chunks=(4096, len(SAMPLE_FIELDS)))
        self._runs = {"names": [], "n_volumes": [], "n_frames": []}
        self.n_dropped = 0
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["rois"] = json.dumps(list(self.rois))
        f.attrs["image_size"] = self.size
        f.attrs["complete"] = False
        for key, value in attrs.items():
            f.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    @staticmethod
    def _append(dataset, values):
        start = dataset.shape[0]
        dataset.resize(start + values.shape[0], axis=0)
        dataset[start:] = values
        return start

    def add_run(self, name, frames, rf_images, voxels, frame_index, first_volumes, n_dropped):
        """Append one run.

        Parameters
        ----------
        name : str
        frames : ndarray, shape (n_frames, 3, S, S), float in [0, 1]
        rf_images : ndarray, shape (n_volumes, n_rois, S, S)
        voxels : dict of str -> ndarray, shape (n_volumes, n_roi_voxels)
        frame_index, first_volumes : ndarray of int, shape (n_samples,)
            Frame (row of ``frames``) and first volume (row of ``rf_images``) of each sample.
        n_dropped : int
            Frames of the run left out because their window ran past the run's end.
        """
        f = self.file
        frame_row0 = self._append(f["frames"], np.asarray(frames, np.float16))
        volume_row0 = self._append(f["rf_images"], np.asarray(rf_images, np.float32))
        for roi in self.rois:
            self._append(f[f"voxels/{roi}"], np.asarray(voxels[roi], np.float32))
        run = len(self._runs["names"])
        samples = np.stack([np.full_like(frame_index, run), frame_index, first_volumes,
                            frame_index + frame_row0, first_volumes + volume_row0], axis=1)
        self._append(f["samples"], samples.astype(np.int64))
        self._runs["names"].append(name)
        self._runs["n_volumes"].append(rf_images.shape[0])
        self._runs["n_frames"].append(frames.shape[0])
        self.n_dropped += int(n_dropped)

    def close(self):
        """Write the run table, mark the file complete and move it into place."""
        f = self.file
        f.create_dataset("runs/names", data=np.array(self._runs["names"], dtype="S"))
        f.create_dataset("runs/n_volumes", data=np.array(self._runs["n_volumes"], np.int64))
        f.create_dataset("runs/n_frames", data=np.array(self._runs["n_frames"], np.int64))
        f.attrs["n_dropped"] = self.n_dropped
        f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        f.attrs["complete"] = True
        f.close()
        os.replace(self.partial, self.path)

    def abort(self):
        """Close and delete the partial file."""
        try:
            self.file.close()
        finally:
            if os.path.exists(self.partial):
                os.remove(self.partial)


REQUIRED = ("frames", "rf_images", "samples", "runs/names", "runs/n_volumes", "runs/n_frames")


def open_prepared(path):
    """Open a prepared split read-only after checking it is complete and of our schema.

    Raises
    ------
    DataError
        Missing, truncated, corrupt or incomplete files, with the file and key named.
    """
    import h5py

    path = os.fspath(path)
    if not os.path.exists(path):
        hint = " (a .partial file is there: the prepare was interrupted; run it again)" \
            if os.path.exists(path + ".partial") else ""
        raise DataError(f"prepared dataset {path!s} does not exist{hint}; "
                        f"create it with `brain2pix prepare RAW_DIR OUT_DIR`")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"prepared dataset {path!s} is not a readable HDF5 file (truncated or "
                        f"corrupt?): {exc}; delete it and run `brain2pix prepare` again") from exc
    try:
        check_prepared(handle, path)
    except Exception:
        handle.close()
        raise
    return handle


def check_prepared(handle, path):
    """Validate the schema of an open prepared file (see module docstring)."""
    attrs = handle.attrs
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"prepared dataset {path!s}: attribute schema_version expected "
                        f"{SCHEMA_VERSION}, got {attrs.get('schema_version')!r}")
    if not bool(attrs.get("complete", False)):
        raise DataError(f"prepared dataset {path!s}: attribute complete is False (an interrupted "
                        f"write); run `brain2pix prepare` again")
    for key in REQUIRED:
        if key not in handle:
            raise DataError(f"prepared dataset {path!s}: key /{key} missing")
    rois = json.loads(attrs["rois"])
    size = int(attrs["image_size"])
    n_volumes = handle["rf_images"].shape[0]
    if handle["rf_images"].shape[1:] != (len(rois), size, size):
        raise DataError(f"prepared dataset {path!s}: /rf_images expected shape (n, {len(rois)}, "
                        f"{size}, {size}), got {handle['rf_images'].shape}")
    if handle["frames"].shape[1:] != (3, size, size):
        raise DataError(f"prepared dataset {path!s}: /frames expected shape (n, 3, {size}, "
                        f"{size}), got {handle['frames'].shape}")
    for roi in rois:
        key = f"voxels/{roi}"
        if key not in handle or handle[key].shape[0] != n_volumes:
            got = handle[key].shape if key in handle else "missing"
            raise DataError(f"prepared dataset {path!s}: /{key} expected {n_volumes} rows, got {got}")
    samples = handle["samples"]
    if samples.ndim != 2 or samples.shape[1] != len(SAMPLE_FIELDS):
        raise DataError(f"prepared dataset {path!s}: /samples expected shape (n, "
                        f"{len(SAMPLE_FIELDS)}), got {samples.shape}")
    return rois, size


def describe_prepared(path):
    """A plain-dict summary of a prepared split: schema, sizes and provenance."""
    with open_prepared(path) as handle:
        info = {
            "file": os.fspath(path),
            "bytes": os.path.getsize(path),
            "schema_version": int(handle.attrs["schema_version"]),
            "split": handle.attrs.get("split", ""),
            "package_version": handle.attrs.get("package_version", ""),
            "created": handle.attrs.get("created", ""),
            "n_dropped": int(handle.attrs.get("n_dropped", 0)),
            "rois": json.loads(handle.attrs["rois"]),
            "runs": [n.decode() for n in handle["runs/names"][()]],
            "datasets": {},
        }
        handle.visititems(lambda name, obj: info["datasets"].__setitem__(
            name, {"shape": list(obj.shape), "dtype": str(obj.dtype),
                   "compression": obj.compression}) if hasattr(obj, "shape") else None)
        info["n_samples"] = int(handle["samples"].shape[0])
        info["config"] = json.loads(handle.attrs.get("config", "{}"))
        info["sources"] = json.loads(handle.attrs.get("sources", "{}"))
        info["bytes_per_1000_samples"] = int(info["bytes"] * 1000 / max(info["n_samples"], 1))
        return info
