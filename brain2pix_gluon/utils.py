"""Small helpers shared across the package: logging, progress bars, atomic JSON writes."""

import contextlib
import hashlib
import json
import logging
import os
import sys

__all__ = ["get_logger", "setup_logging", "progress", "atomic_path", "write_json_atomic",
           "write_text_atomic", "write_npz_atomic", "resolve_data_home", "array_sha256"]


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


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """The package's one atomic writer: yield a temporary name beside ``path`` to write to.

    When the block ends without an exception the temporary file is renamed to ``path`` (readers
    never see half a file); otherwise it is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or path-like
    suffix : str
        Appended to the temporary name, for writers that choose the format by the extension
        (e.g. ``".png"``, ``".npz"``).
    """
    tmp = os.fspath(path) + ".partial" + suffix
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        handle.write(text)
    return path


def write_npz_atomic(path, arrays):
    """Write a dict of arrays as an uncompressed ``.npz`` atomically (see :func:`atomic_path`)."""
    import numpy as np

    with atomic_path(path, ".npz") as tmp:
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


def array_sha256(array):
    """sha256 (hex) of an array's dtype, shape and C-ordered bytes: the one content checksum of
    arrays (test sets, reconstructions, cache keys)."""
    import numpy as np

    array = np.ascontiguousarray(array)
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()
