"""The reconstruction HDF5 schema, shared by ``reconstruct``, the baselines and ``evaluate``.

::

    /reconstructions  float32 (n, 3, S, S)   in [0, 1], same order as the prepared test split
    /targets          float32 (n, 3, S, S)   ground truth (warped frames)
    /samples          int64   (n, 5)         the prepared split's sample index (run, frame, ...)
    /runs/names       str     (n_runs,)      run (clip) names, indexed by samples[:, 0]; UTF-8
                                             (older files: ASCII)
    /input_previews   uint8   (n, S, S, 3)   optional: an RGB picture of each input (figures)
    attributes        schema ("brain2pix-reconstructions"), schema_version, model, variant,
                      weights (JSON: which pretrained weights were used or "random ..."),
                      profile, config (JSON), source (prepared file), checkpoint, created,
                      package_version, complete, targets_sha256

``targets_sha256`` (:func:`targets_checksum`) identifies the ground truth: two files may be
compared frame by frame (``evaluate --baseline``) only when it agrees, and it is checked against
the targets on every read. Every dataset carries HDF5's Fletcher32 checksum.
"""

import json
import os
import time

import numpy as np

from .. import __version__
from ..errors import DataError
from ..utils import array_sha256, as_os_error
from .hdf5 import create_h5, discard_h5, finish_h5, names_array, read_names
from .prepared import check_free_space

__all__ = ["write_reconstructions", "read_reconstructions", "Reconstructions", "targets_checksum",
           "SCHEMA", "RECONSTRUCTION_FILES"]

# what a reconstruction folder holds (``brain2pix reconstruct``; baselines write the HDF5 only)
RECONSTRUCTION_FILES = {"h5": "reconstructions.h5", "mp4": "reconstructions.mp4",
                        "gif": "reconstructions.gif"}

SCHEMA = "brain2pix-reconstructions"
SCHEMA_VERSION = 1


def targets_checksum(targets):
    """sha256 (hex) of the ground-truth frames as C-ordered little-endian float32.

    Parameters
    ----------
    targets : ndarray, shape (n, 3, S, S)
    """
    return array_sha256(np.asarray(targets, dtype="<f4"))


def write_reconstructions(path, reconstructions, targets, samples, run_names, attrs,
                          input_previews=None):
    """Write reconstructions atomically.

    Parameters
    ----------
    path : str
    reconstructions, targets : ndarray, shape (n, 3, S, S)
    samples : ndarray of int64, shape (n, 5)
    run_names : sequence of str
    attrs : dict
        Provenance; non-scalar values are stored as JSON.
    input_previews : ndarray of uint8, shape (n, S, S, 3), optional
    """
    recon = np.asarray(reconstructions, np.float32)
    tgt = np.asarray(targets, np.float32)
    if recon.shape != tgt.shape or recon.ndim != 4 or recon.shape[1] != 3:
        raise DataError(f"reconstructions: expected two arrays of shape (n, 3, S, S), got "
                        f"{recon.shape} and {tgt.shape}")
    if len(samples) != len(recon):
        raise DataError(f"samples: expected {len(recon)} rows, got {len(samples)}")
    previews = None if input_previews is None else np.asarray(input_previews, np.uint8)
    needed = recon.nbytes + tgt.nbytes + (0 if previews is None else previews.nbytes)
    tmp = os.fspath(path) + ".partial"
    check_free_space(tmp, needed)
    # no chunk cache, explicit flush, space given back before closing a failed file: a full disk
    # is an OSError naming the file, never a crash (see brain2pix_gluon.io.hdf5)
    f = create_h5(tmp)
    try:
        chunk = (min(16, max(len(recon), 1)),) + recon.shape[1:]
        f.create_dataset("reconstructions", data=recon, chunks=chunk, compression="lzf",
                         fletcher32=True)
        f.create_dataset("targets", data=tgt, chunks=chunk, compression="lzf", fletcher32=True)
        f.create_dataset("samples", data=np.asarray(samples, np.int64), fletcher32=True)
        f.create_dataset("runs/names", data=names_array(run_names), fletcher32=True)
        if previews is not None:
            f.create_dataset("input_previews", data=previews, compression="lzf", fletcher32=True)
        f.attrs["schema"] = SCHEMA
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["package_version"] = __version__
        f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        for key, value in attrs.items():
            f.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value)
        f.attrs["targets_sha256"] = targets_checksum(tgt)
        f.attrs["complete"] = True
    except BaseException as exc:
        discard_h5(f, tmp)
        converted = as_os_error(exc, path)
        if converted is None or converted is exc:
            raise
        raise OSError(converted.errno, f"{converted.strerror} (writing about {needed / 1e6:.1f} "
                                       f"MB of reconstructions)", path) from exc
    finish_h5(f, tmp, path)
    return path


class Reconstructions(dict):
    """A read reconstruction file: the dict of :func:`read_reconstructions`, plus typed views.

    Attributes
    ----------
    samples : SampleTable
        The prepared split's sample index, columns by name (``.run``, ``.frame``, ...).
    run_names : list of str
    attrs : dict
        Provenance, JSON values decoded.
    config : dict
        The run's resolved config ({} when the file records none).
    marks : list of str
        Its provenance marks (:func:`brain2pix_gluon.provenance.marks_from_attrs`).
    """

    @property
    def samples(self):
        from .prepared import SampleTable

        return SampleTable(self["samples"])

    @property
    def run_names(self):
        return self["run_names"]

    @property
    def attrs(self):
        return self["attrs"]

    @property
    def config(self):
        config = self["attrs"].get("config")
        return config if isinstance(config, dict) else {}

    @property
    def marks(self):
        from ..provenance import marks_from_attrs

        return marks_from_attrs(self["attrs"])


def read_reconstructions(path, max_frames=0):
    """Read a reconstruction file.

    Parameters
    ----------
    path : str
    max_frames : int
        When > 0, only the first ``max_frames`` reconstructions, targets and samples (quick
        evaluations); the file's integrity is checked on all of them first.

    Returns
    -------
    Reconstructions
        A dict: ``reconstructions``, ``targets`` (float32 (n, 3, S, S)), ``samples``,
        ``run_names``, ``input_previews``, ``attrs`` (dict, JSON values decoded); with typed
        views (``.samples.run``, ``.marks``, ...).
    """
    import h5py

    if not os.path.exists(path):
        raise DataError(f"reconstructions {path!s} do not exist; write them with "
                        f"`brain2pix reconstruct` or a baseline")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"reconstructions {path!s}: not a readable HDF5 file ({exc})") from exc
    try:
        with handle as f:
            data = _read_open(f, path)
    except DataError:
        raise
    except (KeyError, OSError, RuntimeError, ValueError, TypeError, UnicodeDecodeError) as exc:
        # h5py reports a damaged object header or B-tree as KeyError ("unable to determine
        # object type"), OSError or RuntimeError, whichever call meets it first
        raise DataError(f"reconstructions {path!s} are corrupt (HDF5 cannot read them: {exc}); "
                        f"write them again with `brain2pix reconstruct` (or the baseline that "
                        f"made them)") from exc
    attrs = data["attrs"]
    checksum = targets_checksum(data["targets"])
    stored = attrs.get("targets_sha256")
    if stored is not None and stored != checksum:
        raise DataError(f"reconstructions {path!s}: /targets do not match the attribute "
                        f"targets_sha256 ({stored[:12]}... stored, {checksum[:12]}... read); the "
                        f"file is corrupt, write it again")
    attrs["targets_sha256"] = checksum
    if max_frames:
        for key in ("reconstructions", "targets", "samples"):
            data[key] = data[key][:max_frames]
    return Reconstructions(data)


def _read_open(f, path):
    """The arrays and attributes of an open reconstruction file (h5py errors propagate)."""
    if f.attrs.get("schema") != SCHEMA or not f.attrs.get("complete", False):
        raise DataError(f"reconstructions {path!s}: attribute schema expected {SCHEMA!r} and "
                        f"complete=True, got {f.attrs.get('schema')!r}, "
                        f"{f.attrs.get('complete')!r}")
    for key in ("reconstructions", "targets", "samples", "runs/names"):
        if key not in f:
            raise DataError(f"reconstructions {path!s}: key /{key} missing")
    attrs = {}
    for key, value in f.attrs.items():
        if isinstance(value, str) and value[:1] in "{[":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        attrs[key] = value
    return {"reconstructions": f["reconstructions"][()], "targets": f["targets"][()],
            "samples": f["samples"][()],
            "input_previews": f["input_previews"][()] if "input_previews" in f else None,
            "run_names": read_names(f["runs/names"][()]), "attrs": attrs}
