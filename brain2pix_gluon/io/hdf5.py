"""Writing HDF5 files so that a full disk is an error, never a crash; names stored as UTF-8.

Why HDF5 used to crash on a full disk (HDF5 1.14, h5py 3.11; seen with ``python -X
faulthandler`` and gdb): h5py keeps written chunks in each dataset's chunk cache and HDF5 writes
them out when the dataset is closed, i.e. when the Python ``Dataset`` object is garbage-collected
(``f["frames"]`` and ``f.create_dataset(...)`` make temporary ones). When that write fails with
ENOSPC, the error cannot be raised (h5py prints "Exception ignored in ObjectID.__dealloc__") and
the failed ``H5Dclose`` leaves a dataset ID behind whose memory HDF5 has already freed. Closing the
file later (``File.close``, the ``with`` block's exit, or HDF5's own clean-up at exit) flushes
every open dataset (``H5F__dest`` -> ``H5D_flush_all``), reaches the freed one and segfaults.
A failed ``H5Fclose`` (metadata that cannot be written) ends the same way at exit.

So the writers here:

* open files without a chunk cache (``rdcc_nbytes=0``): every chunk is written inside the
  ``write`` call that made it, and a full disk raises ``OSError(ENOSPC)`` there, in our code;
* flush explicitly before closing, so metadata errors are raised too (:func:`finish_h5`);
* after any failure, first give the space back (truncate the partial file to 0 bytes), so that the
  closing flush HDF5 insists on can succeed, then close and delete it (:func:`discard_h5`).

One crash is left that no order of calls avoids: a write that fails in the middle of
``H5Dwrite`` leaks memory of HDF5's free lists, and HDF5's own shutdown at process exit crashes on
it (:func:`shutdown_unsafe`); the command line skips that shutdown.
"""

import errno
import os

import numpy as np

from ..utils import as_os_error, remove_quietly

__all__ = ["create_h5", "finish_h5", "discard_h5", "release_space", "shutdown_unsafe",
           "names_array", "read_names"]


def create_h5(partial):
    """Open ``partial`` for writing (truncating it), without a chunk cache (see module doc).

    Raises
    ------
    OSError
        Naming ``partial`` (h5py's message names no file when the disk is full).
    """
    import h5py

    try:
        return h5py.File(partial, "w", rdcc_nbytes=0)
    except Exception as exc:
        converted = as_os_error(exc, partial)
        if converted is None or converted is exc:
            raise
        remove_quietly(partial)
        raise converted from exc


def finish_h5(handle, partial, path):
    """Flush and close a written file, then rename ``partial`` to ``path``.

    Raises
    ------
    OSError
        With the errno of the failed write (ENOSPC for a full disk) and ``path``; the partial
        file is then removed.
    """
    try:
        handle.flush()
        handle.close()
        os.replace(partial, path)
    except BaseException as exc:
        discard_h5(handle, partial)
        converted = as_os_error(exc, path)
        if converted is not None and converted is not exc:
            raise converted from exc
        raise


def release_space(partial):
    """Truncate a partial file to 0 bytes (its space goes back to the file system); never raises.

    HDF5 writes what it holds when a dataset or the file is closed, and a write that fails there
    leaves HDF5 in a state that crashes the process later, so the space is given back before
    anything of a failed file is closed.
    """
    try:
        if os.path.exists(partial):
            os.truncate(partial, 0)
    except OSError:
        pass


_STATE = {"discarded": False}


def shutdown_unsafe():
    """True once a file was discarded after a failed or interrupted write in this process.

    A write that fails inside HDF5 (ENOSPC in the middle of ``H5Dwrite``) can leave memory of
    HDF5's free lists in use; when the library shuts down at process exit (``H5_term_library``,
    a C ``atexit`` handler) it then reports the leak through an error stack that no longer
    exists, recurses until the stack overflows and the process dies with SIGSEGV, after our
    message was printed and the partial file removed. The command line (``brain2pix``) therefore
    ends such a process with ``os._exit`` (see :func:`brain2pix_gluon.cli.main`).
    """
    return _STATE["discarded"]


def discard_h5(handle, partial):
    """Close a file whose writing failed (or was interrupted) and delete it; never raises."""
    _STATE["discarded"] = True
    release_space(partial)
    try:
        if handle is not None and handle.id.valid:
            handle.close()
    except Exception:       # nothing more can be done about a file that is being deleted
        pass
    remove_quietly(partial)


def names_array(names):
    """Names (runs, clips) as HDF5 strings flagged UTF-8, fixed length (the longest name's bytes).

    Any name a file system gives is kept ("clip é 1"; names that are not valid Unicode, Python's
    ``surrogateescape`` for undecodable bytes, are stored as their original bytes). Fixed rather
    than variable length: variable-length strings live in HDF5's global heap, where no filter
    applies, and every dataset of our files carries a Fletcher32 checksum. Read back as bytes,
    exactly like the ASCII names of older files (:func:`read_names` reads both).
    """
    import h5py

    encoded = [os.fsdecode(n).encode("utf-8", "surrogateescape") for n in names]
    length = max([len(e) for e in encoded] + [1])
    return np.array(encoded, dtype=h5py.string_dtype("utf-8", length))


def read_names(values):
    """Names stored by :func:`names_array` (or as fixed-length ASCII by older versions), as str."""
    return [v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)
            for v in np.asarray(values).ravel()]


def enospc(path, needed=None, free=None):
    """``OSError(ENOSPC)`` naming ``path`` with the sizes, when known."""
    text = os.strerror(errno.ENOSPC)
    if needed is not None:
        text += f": writing needs about {needed / 1e6:.1f} MB"
        if free is not None:
            text += f" but {free / 1e6:.1f} MB are free"
    return OSError(errno.ENOSPC, text, os.fspath(path))
