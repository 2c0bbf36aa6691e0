"""Small helpers shared across the package: logging, progress bars, atomic writes."""

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import sys

__all__ = ["get_logger", "setup_logging", "progress", "write_json_atomic", "write_text_atomic",
           "write_npz_atomic", "replacing", "partial_name", "as_os_error", "disk_nearly_full", "remove_quietly",
           "reserve_space", "resolve_data_home", "model_root", "array_sha256"]


def get_logger():
    """The package logger ("brain2pix_gluon"); the CLI attaches a handler to it."""
    return logging.getLogger("brain2pix_gluon")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (it may be replaced)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(verbose=False):
    """Send the package's log to stderr as ``[brain2pix] message`` (once; DEBUG when verbose)."""
    logger = get_logger()
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("[brain2pix] %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def progress(iterable=None, total=None, desc=None, enabled=True, **kwargs):
    """A tqdm progress bar writing to stderr (disabled when ``enabled`` is False)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, leave=False, **kwargs)


# HDF5's file driver writes "errno = 28" into its messages (h5py raises RuntimeError for some)
_ERRNO_IN_TEXT = re.compile(r"\berrno = (\d+)")


def disk_nearly_full(path, slack=1 << 20):
    """True when the file system of ``path`` has less than ``slack`` bytes free (read after a
    failed write, to tell a full disk from other causes)."""
    try:
        stats = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except (OSError, AttributeError):
        return False
    return stats.f_bavail * stats.f_frsize < slack


def as_os_error(exc, path):
    """The OSError that a library's failed write stands for, naming ``path``; None if none.

    h5py raises ``RuntimeError("... errno = 28 ...")`` for some failed writes and MXNet a bare
    ``MXNetError("... FileStream.Write incomplete")`` (a short ``fwrite``: the disk filled, or an
    I/O error); both are turned into ``OSError(errno, strerror, path)`` so the command line
    reports them as it reports any operating-system error (exit 1, the file and the cause).
    An OSError that already names a file is returned unchanged.
    """
    if isinstance(exc, OSError) and exc.errno:
        if exc.filename is not None:
            return exc
        return OSError(exc.errno, os.strerror(exc.errno), os.fspath(path))
    if not isinstance(exc, Exception):
        return None
    text = str(exc)
    found = _ERRNO_IN_TEXT.search(text)
    if found:
        code = int(found.group(1))
    elif "Write incomplete" in text or "No space left on device" in text:
        code = errno.ENOSPC if "No space" in text or disk_nearly_full(path) else errno.EIO
    else:
        return None
    return OSError(code, os.strerror(code), os.fspath(path))


def reserve_space(path):
    """Make the file system allocate every block of ``path`` now (``posix_fallocate``).

    A memory map (``np.memmap``, ``open_memmap``) over a sparse file gets its blocks only when a
    page is written, and on a full disk that write kills the process with SIGBUS; reserving them
    first turns that into ``OSError(ENOSPC)`` naming the file. A no-op where the file system
    cannot reserve space.
    """
    with open(path, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, max(os.fstat(handle.fileno()).st_size, 1))
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                return path
            raise OSError(exc.errno, os.strerror(exc.errno), os.fspath(path)) from None
        except AttributeError:          # no posix_fallocate on this platform
            pass
    return path


def remove_quietly(path):
    """Remove a file or folder if it is there; never raises (used while cleaning up a failure)."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
    except OSError:
        pass


def partial_name(path):
    """``dir/name.partial.ext``: the temporary name of ``path`` (the extension kept last, so
    writers that choose the format by extension, PIL and matplotlib, still see it)."""
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.partial{ext}" if ext else f"{root}.partial"


@contextlib.contextmanager
def replacing(path, tmp=None):
    """Write ``path`` through a temporary name: ``with replacing(path) as tmp: write(tmp)``.

    On success the temporary file (or folder) is renamed to ``path`` (atomically: readers see the
    old file or the new one, never half of one). On any failure, Ctrl-C and SIGTERM included, the
    temporary is removed, and an error of a library's writer that stands for an operating-system
    error (a full disk) is raised as that OSError naming ``path`` (:func:`as_os_error`).
    """
    path = os.fspath(path)
    tmp = partial_name(path) if tmp is None else os.fspath(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        converted = as_os_error(exc, path)     # before the removal (a full disk is judged)
        remove_quietly(tmp)
        if converted is not None and converted is not exc:
            raise converted from exc
        raise


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file, so readers never see half a file;
    nothing is left behind when the write fails."""
    with replacing(path, os.fspath(path) + ".partial") as tmp:
        with open(tmp, "w", newline="") as handle:
            handle.write(text)
    return path


def write_npz_atomic(path, arrays):
    """Write a dict of arrays as an uncompressed ``.npz`` through :func:`replacing`."""
    import numpy as np

    with replacing(path) as tmp:
        np.savez(tmp, **arrays)
    return path


def write_json_atomic(path, data):
    """Write JSON to ``path`` atomically (see :func:`write_text_atomic`)."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def resolve_data_home(path=None):
    """Where cached data (the simulated dataset) lives: argument, then $BRAIN2PIX_DATA, then
    ``~/.cache/brain2pix_gluon``."""
    if path:
        return os.path.abspath(os.path.expanduser(os.fspath(path)))
    env = os.environ.get("BRAIN2PIX_DATA")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    return os.path.join(os.path.expanduser("~"), ".cache", "brain2pix_gluon")


def model_root():
    """The folder the model stores cache pretrained weights in: ``$MXNET_HOME/models`` (default
    ``~/.mxnet/models``), where MXNet and GluonCV look too."""
    return os.path.expanduser(os.path.join(os.environ.get("MXNET_HOME", os.path.join("~", ".mxnet")),
                                           "models"))


def array_sha256(array):
    """sha256 (hex) of an array's dtype, shape and C-ordered bytes: the one content checksum of
    arrays (test sets, reconstructions, cache keys)."""
    import numpy as np

    array = np.ascontiguousarray(array)
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()
