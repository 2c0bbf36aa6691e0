"""The prepared-dataset HDF5 schema: the only module that writes or reads its layout.

One file per split (``train.h5``, ``test.h5``)::

    /frames             float16 (n_frames, 3, S, S)     warped target frames in [0, 1], NCHW
    /rf_images          float32 (n_volumes, n_rois, S, S) per-volume RFSimage of each ROI (eq. 2)
    /voxels/<ROI>       float32 (n_volumes, n_roi_voxels) z-scored voxels, dorsal then ventral
    /rf_centres/<ROI>   float32 (n_roi_voxels, 2)       RF centre (col, row) in [-0.5, 0.5)
    /samples            int64   (n_samples, 5)          run, frame, first_volume, frame_row,
                                                          volume_row
    /runs/names         str     (n_runs,)               UTF-8 (older files: ASCII)
    /runs/n_volumes     int64   (n_runs,)
    /runs/n_frames      int64   (n_runs,)               frames stored per run
    attributes          schema_version, split, package_version, config (JSON), sources (JSON of
                        file -> sha256), rois, image_size, n_dropped, created, complete

``frame_row`` indexes ``/frames``; ``volume_row`` is the row of the sample's first volume in
``/rf_images`` and ``/voxels``; the 5-TR stacks are built on read (rows volume_row ...
volume_row + n_trs - 1), never stored five times. Files are written under ``<name>.partial`` and
renamed only when complete.

Integrity: every dataset carries HDF5's per-chunk Fletcher32 checksum, so flipped bytes are found
when the chunk is read; values are checked on every read as well (frames finite and in [0, 1],
RFSimages, voxels and RF centres finite). Both failures raise :class:`DataError` naming the file and
the dataset.
"""

import errno
import json
import os
import queue
import shutil
import threading
import time
import types

import numpy as np

from ..errors import DataError
from ..utils import as_os_error
from .hdf5 import create_h5, discard_h5, finish_h5, names_array, read_names, release_space

__all__ = ["SCHEMA_VERSION", "SAMPLE_FIELDS", "SAMPLE", "SampleTable", "PreparedSplit", "PreparedArrays",
           "split_attributes",
           "PreparedWriter", "PreparedFile", "open_prepared",
           "check_prepared", "check_values", "check_free_space", "describe_prepared",
           "estimate_bytes", "array_checksums"]

SCHEMA_VERSION = 2     # 2: Fletcher32 checksums on every dataset
SAMPLE_FIELDS = ("run", "frame", "first_volume", "frame_row", "volume_row")
# column of each field in /samples, by name: samples[:, SAMPLE.run]
SAMPLE = types.SimpleNamespace(**{name: k for k, name in enumerate(SAMPLE_FIELDS)})


def _filters(compression, dataset):
    """HDF5 filters of a dataset: the configured compression plus the Fletcher32 checksum.

    ``lzf`` (the fast default) compresses only ``/rf_images``, mostly zeros (8x smaller): on the
    warped frames it saves about 10 % at a third of prepare's writing time, and on the z-scored
    voxels nothing, so those are stored as they are. ``gzip`` compresses every dataset.
    """
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True, "fletcher32": True}
    if compression == "lzf" and dataset == "rf_images":
        return {"compression": "lzf", "fletcher32": True}
    return {"fletcher32": True}


def estimate_bytes(n_volumes, n_frames, n_voxels, image_size):
    """Upper bound of a split file's size before compression (for the free-space check).

    Parameters
    ----------
    n_volumes, n_frames : int
        Volumes (rows of ``/rf_images``) and frames to be stored.
    n_voxels : sequence of int
        Voxels per ROI.
    image_size : int

    Returns
    -------
    int
        Bytes: float16 frames, float32 RFSimages and voxels, int64 sample rows, plus 1 MiB of
        metadata.
    """
    s = int(image_size)
    per_volume = 4 * (len(n_voxels) * s * s + int(sum(n_voxels)))
    per_frame = 2 * 3 * s * s + 8 * len(SAMPLE_FIELDS)
    return int(n_volumes) * per_volume + int(n_frames) * per_frame + (1 << 20)


RESERVE_BYTES = 16 << 20     # kept free beyond the estimate (HDF5 metadata, other writers)


def check_free_space(path, needed):
    """Raise OSError(ENOSPC) naming ``path`` unless its file system has ``needed`` bytes free.

    HDF5 does not survive a full disk gracefully (the write may crash the process), so the space
    is checked before writing.
    """
    folder = os.path.dirname(os.path.abspath(path))
    free = shutil.disk_usage(folder).free
    if free < needed + RESERVE_BYTES:
        raise OSError(errno.ENOSPC, f"No space left on device: writing needs about "
                      f"{(needed + RESERVE_BYTES) / 1e6:.1f} MB (uncompressed estimate) but "
                      f"{free / 1e6:.1f} MB are free", path)


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
        See :func:`_filters`: ``lzf`` compresses the RFSimages only.
    background : bool
        Write in a worker thread (h5py releases the GIL while HDF5 compresses, checksums and
        writes), so the caller prepares the next run meanwhile. Runs are written in the order
        given; at most one run waits in the queue (bounded memory). The arrays handed to
        :meth:`add_run` must not be modified afterwards. ``False`` writes in the calling thread.

    Use as a context manager: on an exception (in the caller or in the worker thread) the partial
    file is removed and nothing named ``path`` is created.
    """

    def __init__(self, path, rois, n_voxels, centres, image_size, attrs, compression="lzf",
                 background=True):
        self.path = os.fspath(path)
        self.partial = self.path + ".partial"
        if os.path.exists(self.partial):
            os.remove(self.partial)
        self.rois = tuple(rois)
        self.size = int(image_size)
        self._error = None
        self._queue = self._thread = None
        # no chunk cache: a full disk raises in the write, never while a dataset is closed (which
        # crashes HDF5; see brain2pix_gluon.io.hdf5)
        self.file = create_h5(self.partial)
        try:
            self._create(rois, n_voxels, centres, attrs, compression)
        except BaseException as exc:
            discard_h5(self.file, self.partial)
            _raise_as_os_error(exc, self.partial)
        if background:
            self._queue = queue.Queue(maxsize=1)
            self._thread = threading.Thread(target=self._drain, name="PreparedWriter", daemon=True)
            self._thread.start()

    def _create(self, rois, n_voxels, centres, attrs, compression):
        f = self.file
        s = self.size
        f.create_dataset("frames", (0, 3, s, s), np.float16, maxshape=(None, 3, s, s),
                         chunks=(8, 3, s, s), **_filters(compression, "frames"))
        f.create_dataset("rf_images", (0, len(self.rois), s, s), np.float32,
                         maxshape=(None, len(self.rois), s, s), chunks=(4, len(self.rois), s, s),
                         **_filters(compression, "rf_images"))
        for roi, n in zip(self.rois, n_voxels):
            f.create_dataset(f"voxels/{roi}", (0, n), np.float32, maxshape=(None, n),
                             chunks=(max(1, min(256, (1 << 18) // max(n, 1))), n),
                             **_filters(compression, "voxels"))
            f.create_dataset(f"rf_centres/{roi}", data=np.asarray(centres[roi], np.float32),
                             fletcher32=True)
        f.create_dataset("samples", (0, len(SAMPLE_FIELDS)), np.int64,
                         maxshape=(None, len(SAMPLE_FIELDS)), chunks=(4096, len(SAMPLE_FIELDS)),
                         fletcher32=True)
        self._runs = {"names": [], "n_volumes": [], "n_frames": []}
        self.n_dropped = 0
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["rois"] = json.dumps(list(self.rois))
        f.attrs["image_size"] = self.size
        f.attrs["complete"] = False
        for key, value in attrs.items():
            f.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value)
        # one handle per dataset for the writer's life (no temporary Dataset objects)
        self._datasets = {name: f[name] for name in
                          ["frames", "rf_images", "samples"] + [f"voxels/{r}" for r in self.rois]}

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def _drain(self):
        """Worker thread: write queued runs in order until the ``None`` sentinel.

        After a failure the remaining runs are discarded (the file will be removed) and the
        exception is raised in the caller's thread by the next :meth:`add_run` or :meth:`close`.
        """
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._write_run(*item)
                except BaseException as exc:     # re-raised in the caller's thread
                    self._error = exc

    def _join(self):
        """Wait until every queued run is written and stop the worker thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _raise_pending(self):
        if self._error is not None:
            error, self._error = self._error, None
            raise error

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
        if len(frame_index) == 0:
            raise DataError(f"run {name!r}: no sample (its {rf_images.shape[0]} volumes are fewer "
                            f"than the shift plus the window of one sample); nothing written to "
                            f"{self.path}")
        self._raise_pending()
        item = (name, frames, rf_images, voxels, frame_index, first_volumes, n_dropped)
        if self._thread is None:
            self._write_run(*item)
        else:
            self._queue.put(item)

    def _write_run(self, name, frames, rf_images, voxels, frame_index, first_volumes, n_dropped):
        d = self._datasets
        needed = estimate_bytes(rf_images.shape[0], frames.shape[0],
                                [v.shape[1] for v in voxels.values()], self.size)
        check_free_space(self.partial, needed)
        try:
            frame_row0 = self._append(d["frames"], np.asarray(frames, np.float16))
            volume_row0 = self._append(d["rf_images"], np.asarray(rf_images, np.float32))
            for roi in self.rois:
                self._append(d[f"voxels/{roi}"], np.asarray(voxels[roi], np.float32))
            run = len(self._runs["names"])
            samples = np.stack([np.full_like(frame_index, run), frame_index, first_volumes,
                                frame_index + frame_row0, first_volumes + volume_row0], axis=1)
            self._append(d["samples"], samples.astype(np.int64))
        except Exception as exc:
            _raise_as_os_error(exc, self.partial, f"writing run {name!r}, about "
                                                  f"{needed / 1e6:.1f} MB before compression")
        self._runs["names"].append(name)
        self._runs["n_volumes"].append(rf_images.shape[0])
        self._runs["n_frames"].append(frames.shape[0])
        self.n_dropped += int(n_dropped)

    def close(self):
        """Write the run table, mark the file complete and move it into place."""
        try:
            self._join()
            self._raise_pending()
        except BaseException:
            self.abort()
            raise
        f = self.file
        try:
            # names as UTF-8 (any file name: "clip é 1"); counts as int64
            for key, values in (("names", names_array(self._runs["names"])),
                                ("n_volumes", np.array(self._runs["n_volumes"], np.int64)),
                                ("n_frames", np.array(self._runs["n_frames"], np.int64))):
                f.create_dataset(f"runs/{key}", data=values, fletcher32=True)
            f.attrs["n_dropped"] = self.n_dropped
            f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            f.attrs["complete"] = True
        except BaseException as exc:
            discard_h5(f, self.partial)
            _raise_as_os_error(exc, self.partial)
        self._datasets = {}
        finish_h5(f, self.partial, self.path)

    def abort(self):
        """Stop the worker thread, close and delete the partial file."""
        try:
            self._join()
        finally:
            release_space(self.partial)     # before any dataset is closed (see io.hdf5)
            self._datasets = {}
            discard_h5(self.file, self.partial)


def _raise_as_os_error(exc, path, doing=None):
    """Raise ``exc`` as the OSError it stands for (naming ``path``, saying what was being done),
    or as it is."""
    converted = as_os_error(exc, path)
    if converted is None or converted is exc:
        raise exc
    if doing:
        converted = OSError(converted.errno, f"{converted.strerror} ({doing})", path)
    raise converted from exc


REQUIRED = ("frames", "rf_images", "samples", "runs/names", "runs/n_volumes", "runs/n_frames")


def _value_rule(key):
    """(lowest, highest) allowed for a dataset's values, or None when any value goes."""
    if key == "frames":
        return (0.0, 1.0)
    if key == "rf_images" or key.startswith(("voxels/", "rf_centres/")):
        return (-np.inf, np.inf)
    return None


def check_values(values, key, path, where=""):
    """Raise DataError unless ``values`` read from dataset ``/key`` of ``path`` are acceptable.

    Frames must be finite and in [0, 1]; RFSimages, voxels and RF centres finite.
    """
    rule = _value_rule(key)
    if rule is None:
        return values
    arr = np.asarray(values)
    if arr.size == 0 or arr.dtype.kind != "f":
        return values
    finite = np.isfinite(arr)
    if not finite.all():
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise DataError(f"prepared dataset {path!s}: /{key}{where} holds {int((~finite).sum())} "
                        f"NaN/inf values (first at index {first}); expected finite values. The "
                        f"file is corrupt: delete it and run `brain2pix prepare` again")
    low, high = rule
    lo, hi = float(arr.min()), float(arr.max())
    if lo < low or hi > high:
        raise DataError(f"prepared dataset {path!s}: /{key}{where} holds values in [{lo:g}, "
                        f"{hi:g}]; expected values in [{low:g}, {high:g}]. The file is corrupt: "
                        f"delete it and run `brain2pix prepare` again")
    return values


class CheckedDataset:
    """An HDF5 dataset of a prepared file whose reads are checked (checksum and values)."""

    def __init__(self, dataset, key, path):
        self._dataset, self.key, self.path = dataset, key, path

    def __getitem__(self, index):
        try:
            values = self._dataset[index]
        except OSError as exc:
            raise DataError(f"prepared dataset {self.path!s}: /{self.key} cannot be read ({exc}); "
                            f"the file is corrupt (a Fletcher32 checksum mismatch means flipped "
                            f"bytes): delete it and run `brain2pix prepare` again") from exc
        return check_values(values, self.key, self.path)

    def __len__(self):
        return len(self._dataset)

    def __array__(self, dtype=None, copy=None):
        values = self[()]
        return values if dtype is None else values.astype(dtype)

    def __getattr__(self, name):
        return getattr(self._dataset, name)


class PreparedFile:
    """A prepared split opened read-only; ``file[key]`` gives a :class:`CheckedDataset`.

    Attributes and everything else of the underlying ``h5py.File`` are reachable as usual
    (``attrs``, ``visititems``, ``close``, ``in``).
    """

    def __init__(self, handle, path):
        self._handle, self.path = handle, path

    def __getitem__(self, key):
        obj = self._handle[key]
        return CheckedDataset(obj, key.strip("/"), self.path) if hasattr(obj, "shape") else obj

    def __contains__(self, key):
        return key in self._handle

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()
        return False


def open_prepared(path):
    """Open a prepared split read-only after checking it is complete and of our schema.

    Returns
    -------
    PreparedFile
        Reads through it are checked (see the module docstring).

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
                        f"create it with `brain2pix prepare RAW --out OUT`")
    if os.path.isdir(path):
        raise DataError(f"prepared dataset {path!s} is a directory; expected a train.h5 or "
                        f"test.h5 file written by `brain2pix prepare`")
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
    return PreparedFile(handle, path)


def check_prepared(handle, path):
    """Validate the schema of an open prepared file (see module docstring)."""
    attrs = handle.attrs
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"prepared dataset {path!s}: attribute schema_version expected "
                        f"{SCHEMA_VERSION}, got {attrs.get('schema_version')!r}; run "
                        f"`brain2pix prepare` again to rebuild it")
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


def array_checksums(path):
    """sha256 of every dataset's array in a prepared file (values, shape and dtype; not the layout).

    Two files with equal checksums hold the same arrays whatever their chunking or compression, so
    this compares the output of two ways of writing a split.

    Returns
    -------
    dict of str -> str
        Dataset name (e.g. ``"frames"``, ``"voxels/V1"``) -> hex digest.
    """
    from ..utils import array_sha256

    out = {}
    with open_prepared(path) as handle:
        def visit(name, obj):
            if hasattr(obj, "shape"):
                out[name] = array_sha256(obj[()])
        handle.visititems(visit)
    return out


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
            "runs": read_names(handle["runs/names"][()]),
            "datasets": {},
        }
        handle.visititems(lambda name, obj: info["datasets"].__setitem__(
            name, {"shape": list(obj.shape), "dtype": str(obj.dtype),
                   "compression": obj.compression, "fletcher32": obj.fletcher32})
            if hasattr(obj, "shape") else None)
        info["n_samples"] = int(handle["samples"].shape[0])
        info["config"] = json.loads(handle.attrs.get("config", "{}"))
        info["sources"] = json.loads(handle.attrs.get("sources", "{}"))
        text = handle.attrs.get("retinotopy")
        info["retinotopy"] = json.loads(text) if text else None
        info["bytes_per_1000_samples"] = int(info["bytes"] * 1000 / max(info["n_samples"], 1))
        return info


def split_attributes(split, settings, sources, dataset_dir, retinotopy):
    """The provenance attributes of a split file (for :class:`PreparedWriter`'s ``attrs``).

    Parameters
    ----------
    split : {"train", "test"}
    settings : dict
        The data settings the split is made with (read back as :attr:`PreparedSplit.config`).
    sources : dict of str -> str
        File -> sha256 of what it is made from.
    dataset_dir : str
    retinotopy : dict
        The orientation check of the centres.
    """
    from .. import __version__

    return {"split": split, "package_version": __version__,
            "config": json.dumps(settings, sort_keys=True),
            "sources": json.dumps(sources, sort_keys=True),
            "raw_dir": os.path.abspath(dataset_dir),
            "retinotopy": json.dumps(retinotopy, sort_keys=True)}


# ---------------------------------------------------------------------------------- typed reads
# Every module outside io/ reads prepared files through these, never by key or attribute name.


class SampleTable:
    """The ``/samples`` table with its columns by name (see :data:`SAMPLE_FIELDS`).

    Parameters
    ----------
    array : ndarray of int64, shape (n_samples, 5)

    Attributes
    ----------
    run, frame, first_volume, frame_row, volume_row : ndarray of int64, shape (n_samples,)
        Run number (index into the run names), frame of the run, first volume of the run's
        window, row of ``/frames`` and row of the window's first volume in ``/rf_images`` and
        ``/voxels``.
    array : ndarray, shape (n_samples, 5)
        The table as stored (what a reconstruction file records).
    """

    def __init__(self, array):
        self.array = np.asarray(array, np.int64).reshape(-1, len(SAMPLE_FIELDS))

    def __getattr__(self, name):
        if name in SAMPLE_FIELDS:
            return self.array[:, SAMPLE_FIELDS.index(name)]
        raise AttributeError(name)

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index):
        """Rows (a slice or index array) as another table."""
        return SampleTable(self.array[index])

    def as_dict(self):
        """dict of field name -> column."""
        return {name: self.array[:, k] for k, name in enumerate(SAMPLE_FIELDS)}


class PreparedSplit:
    """What a prepared split holds besides its big arrays, read once and typed.

    Parameters
    ----------
    path : str

    Attributes
    ----------
    path : str
    split : str
        ``"train"`` or ``"test"`` ('' when not recorded).
    rois : tuple of str
    image_size : int
    config : dict
        The ``data`` settings it was prepared with (``vim2`` too for vim-2); ``tr`` is the
        recording's TR.
    sources : dict of str -> str
        File -> sha256 of what it was made from.
    retinotopy : dict or None
        The orientation check of the centres (None in files of older versions).
    run_names : list of str
    n_volumes : int
        Rows of the RFSimages and voxels.
    n_voxels : dict of str -> int
        Voxels per ROI.
    samples : SampleTable
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        with open_prepared(self.path) as handle:
            attrs = handle.attrs
            self.split = attrs.get("split", "")
            self.rois = tuple(json.loads(attrs["rois"]))
            self.image_size = int(attrs["image_size"])
            config = json.loads(attrs.get("config", "{}"))
            # files of early versions recorded the whole config
            self.config = config["data"] if isinstance(config.get("data"), dict) else config
            self.sources = json.loads(attrs.get("sources", "{}"))
            text = attrs.get("retinotopy")
            self.retinotopy = json.loads(text) if text else None
            self._identity = {k: str(attrs.get(k, "")) for k in ("sources", "config",
                                                                 "package_version")}
            self.run_names = read_names(handle["runs/names"][()])
            self.n_volumes = int(handle["rf_images"].shape[0])
            self.n_frames = int(handle["frames"].shape[0])
            self.n_voxels = {roi: int(handle[f"voxels/{roi}"].shape[1]) for roi in self.rois}
            self.samples = SampleTable(handle["samples"][()])

    @property
    def tr(self):
        """Seconds per volume of the recording (None when the file does not say)."""
        tr = self.config.get("tr")
        return None if tr is None else float(tr)

    @property
    def n_trs(self):
        """Volumes per sample window (the paper's 5 when the file does not say)."""
        from ..config import DataConfig

        return int(self.config.get("n_trs", DataConfig.n_trs))

    @property
    def rf_layout(self):
        return self.config.get("rf_layout", "aligned")

    def identity(self):
        """What the split's content depends on (its sources, settings and package version), as
        strings: a key for caches of anything computed from it."""
        return dict(self._identity)

    def rf_centres(self):
        """RF centre (x, y) of each ROI voxel: dict roi -> ndarray, shape (n_roi_voxels, 2)."""
        with open_prepared(self.path) as handle:
            return {roi: handle[f"rf_centres/{roi}"][()] for roi in self.rois}

    def arrays(self, rois=None, in_memory=False):
        """Row reads of the big arrays (see :class:`PreparedArrays`)."""
        return PreparedArrays(self.path, self.rois if rois is None else rois, in_memory)


class PreparedArrays:
    """Row reads of a prepared split's frames, RFSimages and voxels, checked on every read.

    Parameters
    ----------
    path : str
    rois : sequence of str
        ROIs whose voxels are read.
    in_memory : bool
        Read everything once (fast random access) instead of reading rows from the open file.
        An open file belongs to one process: make a new instance after a fork.
    """

    def __init__(self, path, rois, in_memory=False):
        self.rois = tuple(rois)
        keys = ("frames", "rf_images", *(f"voxels/{r}" for r in self.rois))
        self._handle = None
        if in_memory:
            with open_prepared(path) as handle:
                self._arrays = {key: handle[key][()] for key in keys}
        else:
            self._handle = open_prepared(path)
            self._arrays = {key: self._handle[key] for key in keys}

    def frames(self, index=()):
        """Warped target frames, float16 (n, 3, S, S) in [0, 1] (or one frame)."""
        return self._arrays["frames"][index]

    def rf_images(self, index=()):
        """RFSimages, float32 (n, n_rois_in_file, S, S)."""
        return self._arrays["rf_images"][index]

    def voxels(self, roi, index=()):
        """z-scored voxels of a ROI, float32 (n, n_roi_voxels)."""
        return self._arrays[f"voxels/{roi}"][index]

    def close(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
