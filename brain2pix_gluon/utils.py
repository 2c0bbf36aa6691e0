"""Small helpers shared across the package: logging, progress bars, atomic JSON writes."""

import hashlib
import json
import logging
import os
import sys

__all__ = ["get_logger", "setup_logging", "progress", "write_json_atomic", "write_text_atomic",
           "resolve_data_home", "model_root", "array_sha256"]


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


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file, so readers never see half a file."""
    tmp = os.fspath(path) + ".partial"
    with open(tmp, "w", newline="") as handle:
        handle.write(text)
    os.replace(tmp, path)
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
