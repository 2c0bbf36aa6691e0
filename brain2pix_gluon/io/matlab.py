"""MATLAB ``.mat`` files: the one place that reads and writes them.

MATLAB writes two unrelated formats:

* **v5** (``save -v7`` and older, the default): read and written through :mod:`scipy.io`;
* **v7.3** (``save -v7.3``, needed for variables over 2 GB): an HDF5 file whose first 512 bytes
  are a "user block" holding a 128-byte text header ``MATLAB 7.3 MAT-file, ...``. MATLAB stores
  arrays in column-major (Fortran) order, so an HDF5 dataset of shape ``(n, m)`` is the MATLAB
  array of size ``m x n``; :func:`read_mat` transposes every array so that both formats give the
  same NumPy arrays (a MATLAB row vector of N values is ``(1, N)`` either way).

Both functions raise :class:`~brain2pix_gluon.errors.DataError` naming the file on failure.
"""

import datetime
import os

import numpy as np

from ..errors import DataError
from ..utils import as_os_error

__all__ = ["read_mat", "write_mat", "mat_version", "MAT_VERSIONS"]

MAT_VERSIONS = ("5", "7.3")
_USERBLOCK = 512
_HEADER_LEN = 128

# MATLAB class names of the numeric HDF5 datasets it writes
_MATLAB_CLASS = {
    np.dtype(np.float64): "double", np.dtype(np.float32): "single",
    np.dtype(np.int8): "int8", np.dtype(np.int16): "int16", np.dtype(np.int32): "int32",
    np.dtype(np.int64): "int64", np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16",
    np.dtype(np.uint32): "uint32", np.dtype(np.uint64): "uint64",
}


def mat_version(path):
    """Which MATLAB format a file is written in.

    Returns
    -------
    {"5", "7.3"}

    Raises
    ------
    DataError
        If the file does not exist or is neither format.
    """
    if not os.path.isfile(path):
        raise DataError(f"MATLAB file {path!s} does not exist")
    import h5py

    if h5py.is_hdf5(path):
        return "7.3"
    with open(path, "rb") as handle:
        head = handle.read(_HEADER_LEN)
    # v5 header: 116 bytes of text, 8 bytes subsystem offset, version, endian "IM"/"MI";
    # v4 files have no header at all and are left to scipy to accept or refuse
    if len(head) == _HEADER_LEN and head[:6] == b"MATLAB" and head[126:128] not in (b"IM", b"MI"):
        raise DataError(f"MATLAB file {path!s}: header {head[:40]!r} is neither v5 nor v7.3")
    return "5"


def _read_h5_node(node, path, name):
    import h5py

    if isinstance(node, h5py.Group):
        return {k: _read_h5_node(node[k], path, f"{name}.{k}") for k in node.keys()
                if not k.startswith("#")}
    cls = node.attrs.get("MATLAB_class", b"double")
    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
    if int(node.attrs.get("MATLAB_empty", 0)):
        dims = tuple(int(d) for d in np.asarray(node[()]).reshape(-1))
        return np.zeros(dims, dtype=bool if cls == "logical" else np.float64)
    if node.dtype.kind == "O":
        raise DataError(f"MATLAB v7.3 file {path!s}, variable {name!r}: cell arrays and "
                        f"references are not supported; save plain numeric arrays")
    arr = np.asarray(node[()])
    if arr.ndim >= 2:
        arr = arr.T  # column-major on disk
    if cls == "logical":
        return arr.astype(bool)
    if cls == "char":
        return "".join(map(chr, arr.reshape(-1, order="F")))
    return arr


def read_mat(path):
    """Read all variables of a MATLAB v5 or v7.3 file.

    Parameters
    ----------
    path : str

    Returns
    -------
    dict of str -> ndarray (or dict for a v7.3 struct, str for a v7.3 char array)
        The same shapes for both formats: MATLAB's ``m x n`` array is ``(m, n)``; a vector keeps
        its 2-D MATLAB shape ``(1, N)`` or ``(N, 1)``. scipy's metadata keys (``__header__`` ...)
        are dropped.

    Raises
    ------
    DataError
        If the file is missing, is not a MATLAB file, or cannot be decoded.
    """
    version = mat_version(path)
    try:
        if version == "5":
            from scipy import io as sio

            data = sio.loadmat(path)
            return {k: v for k, v in data.items() if not k.startswith("__")}
        import h5py

        with h5py.File(path, "r") as handle:
            return {k: _read_h5_node(handle[k], path, k) for k in handle.keys()
                    if not k.startswith("#")}
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"MATLAB v{version} file {path!s} could not be read: "
                        f"{type(exc).__name__}: {exc}") from exc


def _matlab_2d(value, path, name):
    arr = np.asarray(value)
    if arr.dtype.kind == "b":
        pass
    elif arr.dtype not in _MATLAB_CLASS:
        raise DataError(f"write_mat {path!s}, variable {name!r}: expected a numeric or boolean "
                        f"array, got dtype {arr.dtype}")
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        arr = arr.reshape(1, -1)  # MATLAB row vector, as scipy's savemat writes 1-D arrays
    return arr


def _v73_header():
    now = datetime.datetime.utcnow().strftime("%a %b %d %H:%M:%S %Y")
    text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {now} HDF5 schema 1.00 ."
    text = text.encode("ascii").ljust(116, b" ")
    # subsystem data offset (unused), version 0x0200, endian indicator "IM"
    return text + b" " * 8 + b"\x00\x02" + b"IM"


def write_mat(path, variables, version="5"):
    """Write numeric/boolean arrays as a MATLAB file.

    Parameters
    ----------
    path : str
    variables : dict of str -> array_like
        Numeric or boolean arrays; 1-D arrays are written as MATLAB row vectors ``1 x N``.
    version : {"5", "7.3"}
        ``"5"``: MATLAB's default format (through scipy). ``"7.3"``: HDF5 with MATLAB's 512-byte
        header and column-major arrays, as ``save -v7.3`` writes.

    Raises
    ------
    DataError
        On an unknown version or a variable that MATLAB cannot hold; nothing is left behind.
    """
    version = str(version)
    if version not in MAT_VERSIONS:
        raise DataError(f"write_mat {path!s}: version expected one of {list(MAT_VERSIONS)}, "
                        f"got {version!r}")
    arrays = {str(k): _matlab_2d(v, path, k) for k, v in variables.items()}
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        if version == "5":
            from scipy import io as sio

            sio.savemat(tmp, arrays, do_compression=False, oned_as="row")
            if os.path.exists(tmp + ".mat") and not os.path.exists(tmp):
                os.replace(tmp + ".mat", tmp)
        else:
            import h5py

            from .hdf5 import discard_h5

            # closed explicitly, and given back its space first on a failure (a full disk must
            # not crash HDF5; see brain2pix_gluon.io.hdf5)
            handle = h5py.File(tmp, "w", userblock_size=_USERBLOCK, rdcc_nbytes=0)
            try:
                for name, arr in arrays.items():
                    if arr.dtype.kind == "b":
                        data, cls = arr.astype(np.uint8), "logical"
                    else:
                        data, cls = arr, _MATLAB_CLASS[arr.dtype]
                    dset = handle.create_dataset(name, data=np.ascontiguousarray(data.T))
                    dset.attrs["MATLAB_class"] = np.bytes_(cls)
                    if cls == "logical":
                        dset.attrs["MATLAB_int_decode"] = np.int32(1)
                    del dset
                handle.flush()
                handle.close()
            except BaseException:
                discard_h5(handle, tmp)
                raise
            with open(tmp, "r+b") as handle:
                handle.write(_v73_header())
        os.replace(tmp, path)
    except Exception as exc:
        for leftover in (tmp, tmp + ".mat"):
            if os.path.exists(leftover):
                os.remove(leftover)
        if isinstance(exc, DataError):
            raise
        converted = as_os_error(exc, path)      # a full disk is exit 1 with the file, as elsewhere
        if converted is not None:
            raise (converted if converted is not exc else exc) from None
        raise DataError(f"write_mat {path!s} (v{version}) failed: {type(exc).__name__}: {exc}") from exc
