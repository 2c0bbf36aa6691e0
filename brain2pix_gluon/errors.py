"""Exceptions and input validation shared by the whole package.

Every error raised at a public boundary names the parameter, file or key, what was expected and
what came in, so that a user can fix the input without reading our code.
"""

import errno
import os

import numpy as np

__all__ = [
    "Brain2PixError",
    "DataError",
    "ConfigError",
    "CheckpointError",
    "TrainingError",
    "WeightsUnavailableError",
    "FolderInUseError",
    "Terminated",
    "check_array",
    "check_choice",
    "describe_os_error",
]


class Brain2PixError(Exception):
    """Base class of every exception raised on purpose by brain2pix_gluon."""


class DataError(Brain2PixError, ValueError):
    """Input data (arrays, files, HDF5 datasets) do not have the expected content or shape."""


class ConfigError(Brain2PixError, ValueError):
    """A configuration key or value is unknown or out of range."""


class CheckpointError(Brain2PixError, RuntimeError):
    """A checkpoint is missing, corrupt or belongs to another configuration."""


class TrainingError(Brain2PixError, RuntimeError):
    """Training cannot go on (a non-finite loss, an output folder of another run)."""


class WeightsUnavailableError(Brain2PixError, RuntimeError):
    """Pretrained weights are needed but could neither be downloaded nor found locally."""


class FolderInUseError(Brain2PixError, RuntimeError):
    """Another process writes into the same output folder (see :mod:`brain2pix_gluon.locking`)."""


class Terminated(KeyboardInterrupt):
    """Raised by the command line's SIGTERM handler.

    A :class:`KeyboardInterrupt` so that every clean-up written for Ctrl-C (partial files
    removed, a checkpoint saved) runs for SIGTERM as well; ``brain2pix`` then exits with 143
    (128 + 15) instead of 130.
    """


def _where(name, source):
    return f"{name!s} in {source!s}" if source is not None else f"{name!s}"


def check_array(array, name, *, ndim=None, shape=None, finite=False, source=None, dtype_kind=None):
    """Validate an array and return it as an ndarray.

    Parameters
    ----------
    array : array_like
        The value to check.
    name : str
        Parameter or key name used in the error message.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    shape : tuple, optional
        Expected shape; ``None`` entries match any size. Its length also fixes ``ndim``.
    finite : bool
        If True, NaN or inf values raise.
    source : str, optional
        File (and key) the array came from, quoted in the message.
    dtype_kind : str, optional
        Allowed ``numpy.dtype.kind`` characters, e.g. ``"fiu"`` for numbers or ``"b"`` for masks.

    Returns
    -------
    ndarray

    Raises
    ------
    DataError
        When any of the conditions fail.
    """
    where = _where(name, source)
    try:
        arr = np.asarray(array)
    except Exception as exc:  # pragma: no cover - numpy raises many kinds here
        raise DataError(f"{where}: expected an array, got {type(array).__name__} ({exc})") from exc
    if dtype_kind is not None and arr.dtype.kind not in dtype_kind:
        raise DataError(f"{where}: expected dtype kind in {dtype_kind!r}, got dtype {arr.dtype}")
    if shape is not None:
        ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok:
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise DataError(f"{where}: expected shape {want}, got shape {arr.shape}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise DataError(
                f"{where}: expected {' or '.join(map(str, allowed))} dimensions, "
                f"got shape {arr.shape}")
    if finite and arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))
        raise DataError(
            f"{where}: expected finite values, found {len(bad)} NaN/inf entries "
            f"(first at index {tuple(int(i) for i in bad[0])})")
    return arr


def check_choice(value, name, choices):
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name}: expected one of {sorted(map(str, choices))}, got {value!r}")
    return value


_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or write somewhere else",
    errno.EDQUOT: "the disk quota is exhausted: free some space or write somewhere else",
    errno.EACCES: "permission denied: choose a path you may write to",
    errno.EPERM: "operation not permitted: choose a path you may write to",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.EEXIST: "something is already there: a file where a folder is needed?",
    errno.ENOTDIR: "a file is in the way where a folder is needed",
    errno.EISDIR: "a folder was given where a file is needed",
    errno.EFBIG: "the file grew past the size allowed",
}


def describe_os_error(exc):
    """A one-line account of an OSError: the path(s), the cause and what to do.

    Parameters
    ----------
    exc : OSError

    Returns
    -------
    str
        e.g. ``"/data/out/train.h5.partial: No space left on device [ENOSPC]: the disk is full:
        free some space or write somewhere else"``.
    """
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    cause = exc.strerror or str(exc) or type(exc).__name__
    code = errno.errorcode.get(exc.errno, "") if exc.errno else ""
    text = f"{paths + ': ' if paths else ''}{cause}{f' [{code}]' if code else ''}"
    hint = _OS_HINTS.get(exc.errno)
    if exc.errno in (errno.EACCES, errno.EPERM) and exc.filename is not None:
        hint = _permission_hint(os.fspath(exc.filename), hint)
    return f"{text}: {hint}" if hint else text


def _permission_hint(path, default):
    """Advice for a refused access: reading (an existing file or folder we may not read or
    enter) or writing (anything else)."""
    if os.path.isdir(path) and not os.access(path, os.R_OK | os.X_OK):
        return ("permission denied: you may not read this folder; make it readable "
                "(chmod u+rx) or ask its owner")
    if os.path.isfile(path) and not os.access(path, os.R_OK):
        return ("permission denied: you may not read this file; make it readable (chmod u+r) "
                "or ask its owner")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(parent) and not os.access(parent, os.X_OK):
        return (f"permission denied: you may not enter the folder {parent}; make it readable "
                f"(chmod u+rx) or ask its owner")
    return default


def params_load_problem(exc):
    """What went wrong when Gluon's ``load_parameters`` raised ``exc``, in words.

    Gluon asserts on parameters absent from the file or of another shape; MXNet's reader raises
    its own error on bytes it cannot parse (a truncated or foreign file).

    Returns
    -------
    str
        E.g. ``"does not match the network's shapes: ..."``, to follow the file's name.
    """
    text = str(exc).strip()
    detail = text.splitlines()[0] if text else type(exc).__name__
    if "shape incompatible" in text:
        kind = "does not match the network's shapes (another model, ROI set or image size?)"
    elif isinstance(exc, AssertionError):
        kind = "lacks parameters the network needs (a file of another network?)"
    else:
        kind = "is not a readable .params file (truncated or another format?)"
    return f"{kind}: {detail}"
