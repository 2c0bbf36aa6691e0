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
"""

import errno
import os

import numpy as np

from ..utils import as_os_error, remove_quietly

__all__ = ["create_h5", "finish_h5", "discard_h5", "names_array", "read_names"]


def create_h5(partial):
    """Open ``partial`` for writing (truncating it), without a chunk cache (see module doc)."""
    import h5py

    return h5py.File(partial, "w", rdcc_nbytes=0)


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


def discard_h5(handle, partial):
    """Close a file whose writing failed (or was interrupted) and delete it; never raises."""
    try:
        # give the space back first: HDF5 flushes what it holds when the file is closed, and a
        # flush that fails there leaves HDF5 in a state that crashes the process later
        if os.path.exists(partial):
            os.truncate(partial, 0)
    except OSError:
        pass
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
