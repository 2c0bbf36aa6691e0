"""Make the CUDA 11 libraries of NVIDIA's pip wheels loadable before MXNet is imported.

The ``mxnet-cu112`` wheel does not carry the CUDA libraries ``libmxnet.so`` links against. The
``cu112`` extra of ``setup.py`` installs them as NVIDIA's pip wheels (``nvidia-*-cu11``), each into
``site-packages/nvidia/<part>/lib``, a folder the dynamic loader does not search. Loading each one
here, by full path and with ``RTLD_GLOBAL``, before MXNet is imported, makes the loader find them
already in memory when ``libmxnet.so`` asks for their sonames: no ``LD_LIBRARY_PATH`` is needed.
cuDNN and NVRTC open their helper libraries (``libcudnn_*.so.8``, ``libnvrtc-builtins``) from their
own folder (their RUNPATH is ``$ORIGIN``), so only the sonames ``libmxnet.so`` names are loaded.

Only the driver's ``libcuda.so.1`` has to come from the machine. All of this runs only when a CUDA
build of MXNet is installed, decided from the installed wheels' metadata folders without importing
MXNet, so on a CPU build importing the package costs a listing of the sys.path folders (docs/gpu.md).
"""

import os
import sys
import warnings
from collections import namedtuple

__all__ = ["CUDA_DISTRIBUTIONS", "LIBRARIES", "DRIVER_LIBRARY", "FIX_COMMAND", "cuda_build",
           "find_library", "preload", "missing"]

# The CUDA builds of MXNet whose libraries the cu112 extra provides (setup.py).
CUDA_DISTRIBUTIONS = ("mxnet-cu112",)
DRIVER_LIBRARY = "libcuda.so.1"   # comes with the NVIDIA driver, never with a wheel
FIX_COMMAND = 'pip install -e ".[cu112]"   (from the clone; it installs the nvidia-*-cu11 wheels)'

Library = namedtuple("Library", "soname part wheel")
Library.__doc__ = """A CUDA library libmxnet.so needs: its soname, the folder under
site-packages/nvidia that holds it, and the pip wheel that installs it."""

# What libmxnet.so of mxnet-cu112 1.9.1 names (readelf -d), in an order where each library's own
# dependencies come first (libcublas needs libcublasLt; libcusolver needs both).
LIBRARIES = (
    Library("libcudart.so.11.0", "cuda_runtime", "nvidia-cuda-runtime-cu11"),
    Library("libcublasLt.so.11", "cublas", "nvidia-cublas-cu11"),
    Library("libcublas.so.11", "cublas", "nvidia-cublas-cu11"),
    Library("libcusolver.so.11", "cusolver", "nvidia-cusolver-cu11"),
    Library("libcufft.so.10", "cufft", "nvidia-cufft-cu11"),
    Library("libcurand.so.10", "curand", "nvidia-curand-cu11"),
    Library("libnvrtc.so.11.2", "cuda_nvrtc", "nvidia-cuda-nvrtc-cu11"),
    Library("libnvToolsExt.so.1", "nvtx", "nvidia-nvtx-cu11"),
    Library("libnccl.so.2", "nccl", "nvidia-nccl-cu11"),
    Library("libcudnn.so.8", "cudnn", "nvidia-cudnn-cu11"),
)

_state = {"done": False, "found": {}, "missing": {}}


def cuda_build(search_path=None):
    """``(distribution, version)`` of the installed CUDA build of MXNet, or None (a CPU build or
    no MXNet).

    Looks for the wheel's ``<name>-<version>.dist-info`` folder in the entries of ``search_path``
    (default ``sys.path``), as ``importlib.metadata`` would, but without importing it (tens of
    milliseconds on every start) or MXNet.
    """
    prefixes = tuple(name.replace("-", "_") + "-" for name in CUDA_DISTRIBUTIONS)
    for entry in search_path if search_path is not None else sys.path:
        try:
            names = os.listdir(entry or os.curdir)
        except OSError:   # a zip file, a missing folder
            continue
        for name in names:
            if name.endswith(".dist-info") and name.lower().startswith(prefixes):
                dist, version = name[:-len(".dist-info")].split("-", 1)
                return dist.replace("_", "-"), version
    return None


def find_library(library, search_path=None):
    """Full path of ``library`` in the first ``<entry>/nvidia/<part>/lib`` of ``search_path``
    (default ``sys.path``) that holds it, or None."""
    for entry in search_path if search_path is not None else sys.path:
        path = os.path.join(entry or os.curdir, "nvidia", library.part, "lib", library.soname)
        if os.path.isfile(path):
            return path
    return None


def preload(search_path=None, force=False):
    """Load every library of :data:`LIBRARIES` with ``RTLD_GLOBAL``, when a CUDA build of MXNet
    is installed; once per process.

    A library no wheel provides is left to the system loader (a CUDA toolkit on
    ``LD_LIBRARY_PATH``, say); one the system loader cannot find either is reported in one
    ``RuntimeWarning`` naming it, its wheel and :data:`FIX_COMMAND`: MXNet's own error would name
    only the first.

    Parameters
    ----------
    search_path : list of str, optional
        Where to look for ``nvidia/<part>/lib`` (default ``sys.path``).
    force : bool
        Run again even if already run, and even without a CUDA build (for tests and checks).

    Returns
    -------
    found : dict of str -> str
        Soname -> path it was loaded from (``"system loader"`` when found outside the wheels).
    missing : dict of str -> str
        Soname -> the wheel that provides it.
    """
    if _state["done"] and not force:
        return _state["found"], _state["missing"]
    _state.update(done=True, found={}, missing={})
    if not force and cuda_build() is None:
        return _state["found"], _state["missing"]
    import ctypes   # only now: a CPU build does not pay for it
    for library in LIBRARIES:
        path = find_library(library, search_path)
        try:
            ctypes.CDLL(path or library.soname, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            _state["missing"][library.soname] = library.wheel
            continue
        _state["found"][library.soname] = path or "system loader"
    if _state["missing"]:
        warnings.warn(
            "CUDA build of MXNet: cannot find "
            + ", ".join(f"{soname} (wheel {wheel})" for soname, wheel in _state["missing"].items())
            + f"; importing mxnet will fail. Fix: {FIX_COMMAND}; `brain2pix doctor` shows the rest.",
            RuntimeWarning, stacklevel=2)
    return _state["found"], _state["missing"]


def missing():
    """Sonames the last :func:`preload` could not load -> the wheel that provides each."""
    return dict(_state["missing"])
