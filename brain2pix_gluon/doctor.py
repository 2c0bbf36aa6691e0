"""``brain2pix doctor``: what this machine has and lacks before a long run, in a few seconds.

Each check gives one line with a status, and every line that is not ``ok`` carries the command
that fixes it:

- ``MISSING``: a default run cannot work (MXNet does not import; a CUDA build lacks a CUDA
  library; the data home cannot be written). ``brain2pix doctor`` then exits 1.
- ``note``: the run works but differs from the paper or is slower. Pretrained weights neither
  cached nor reachable are a note: the default weights setting, ``auto``, then falls back to
  random weights and marks every output (model_zoo/pretrained.py). No ffmpeg is a note too: video
  decoding falls back on OpenCV (io/video.py).

Nothing is downloaded: the pretrained weights are looked for in the model stores' cache and their
download URLs are probed with a HEAD request and a short timeout, all three at once.
"""

import os
import shutil
import subprocess
import sys
from collections import namedtuple

from . import __version__

__all__ = ["Check", "run_doctor", "check_mxnet", "check_cuda_libraries", "check_ffmpeg",
           "check_pretrained", "check_folders", "check_cpu", "VECTOR_EXTENSIONS"]

Check = namedtuple("Check", "section name status detail fix")
Check.__doc__ = """One line of the report: ``status`` is "ok", "note" or "MISSING"; ``fix`` is the
command that fixes a note or a missing piece ("" when ok)."""

OK, NOTE, MISSING = "ok", "note", "MISSING"
# x86 flags of /proc/cpuinfo that decide how fast MXNet's oneDNN kernels run, widest last
VECTOR_EXTENSIONS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "amx_tile")
MIN_FREE_BYTES = 2 * 1024 ** 3   # the embedded dataset, a quick run and its caches fit in 2 GB
INSTALL_CPU = 'pip install -e ".[cpu]"'


def check_mxnet():
    """The MXNet build (CPU or CUDA, version, oneDNN) and the GPUs it sees."""
    from .cuda_libraries import FIX_COMMAND, cuda_build

    build = cuda_build()
    kind = f"CUDA ({build[0]})" if build else "CPU"
    try:
        import mxnet as mx
    except (ImportError, OSError) as exc:   # OSError: a shared library libmxnet.so needs
        fix = FIX_COMMAND if build else INSTALL_CPU
        if build and "libcuda.so" in str(exc):
            fix = ("install the NVIDIA driver (it provides libcuda.so.1), or use the CPU build: "
                   + INSTALL_CPU)
        return [Check("MXNet", "build", MISSING, f"{kind} build does not import: "
                      f"{type(exc).__name__}: {exc}", fix)]
    features = mx.runtime.Features()
    enabled = [name for name in ("CUDA", "CUDNN", "NCCL", "MKLDNN", "OPENMP")
               if features.is_enabled(name)]
    checks = [Check("MXNet", "build", OK, f"mxnet {mx.__version__}, {kind} build; enabled: "
                    f"{', '.join(enabled) or 'none'} (MKLDNN = oneDNN)", "")]
    if not features.is_enabled("MKLDNN"):
        checks.append(Check("MXNet", "oneDNN", NOTE, "built without oneDNN: convolutions on the "
                            "CPU are several times slower", INSTALL_CPU))
    if build:
        try:
            n_gpus = mx.context.num_gpus()
        except mx.base.MXNetError as exc:
            n_gpus, why = 0, f" ({exc})".splitlines()[0]
        else:
            why = ""
        status = OK if n_gpus else NOTE
        checks.append(Check("MXNet", "GPUs", status, f"{n_gpus} visible{why}",
                            "" if n_gpus else "check the driver with nvidia-smi; runs use the CPU "
                            "without --gpus"))
    else:
        checks.append(Check("MXNet", "GPUs", OK, "none used (CPU build; for a GPU see "
                            "docs/gpu.md)", ""))
    return checks


def check_cuda_libraries():
    """The CUDA libraries a CUDA build needs, found or missing (nothing on a CPU build)."""
    from . import cuda_libraries

    if cuda_libraries.cuda_build() is None:
        return []
    found, missing = cuda_libraries.preload()
    checks = [Check("CUDA libraries", soname, OK, path, "") for soname, path in found.items()]
    checks += [Check("CUDA libraries", soname, MISSING, f"not found (pip wheel {wheel})",
                     cuda_libraries.FIX_COMMAND) for soname, wheel in missing.items()]
    return checks


def check_ffmpeg(executable=None):
    """The ffmpeg binary video decoding uses and its version."""
    from .io.video import ffmpeg_executable

    exe = executable or ffmpeg_executable()
    if exe is None:
        return [Check("ffmpeg", "ffmpeg", NOTE, "not found: videos are decoded with OpenCV "
                      "(same frames, README) and the simulator writes mp4 instead of webm",
                      "pip install imageio-ffmpeg==0.6.0")]
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=10)
        version = (out.stdout.splitlines() or ["?"])[0]
    except (OSError, subprocess.SubprocessError) as exc:
        return [Check("ffmpeg", "ffmpeg", NOTE, f"{exe} does not run: {exc}",
                      "pip install --force-reinstall imageio-ffmpeg==0.6.0")]
    return [Check("ffmpeg", "ffmpeg", OK, f"{version} ({exe})", "")]


def _fetch_command(name, root):
    if name.startswith("c3d"):
        code = (f"from gluoncv.model_zoo import get_model; get_model('{name}', pretrained=True, "
                f"root='{root}')")
    else:
        code = f"from mxnet.gluon.model_zoo import vision; vision.{name}(pretrained=True, root='{root}')"
    return f'python -c "{code}"  (with internet; or copy its .params file into {root})'


def check_pretrained(timeout=None):
    """Each pretrained network: cached, downloadable (URL answers within ``timeout``) or neither.

    Neither is a note, not a missing piece: the default weights setting ``auto`` falls back to
    random weights and marks the outputs.
    """
    from .model_zoo import pretrained
    from .utils import model_root

    timeout = pretrained.PROBE_TIMEOUT if timeout is None else timeout
    root = model_root()
    cached = {name: pretrained.cached_weights(name) for name in pretrained.NETWORKS}
    urls = {name: pretrained.download_url(name) for name, path in cached.items() if not path}
    answers = pretrained.probe_downloads(list(urls.values()), timeout)   # all at once
    checks = []
    for name, label in pretrained.NETWORKS.items():
        if cached[name]:
            checks.append(Check("pretrained weights", label, OK, f"cached: {cached[name]}", ""))
        elif answers[urls[name]] is None:
            checks.append(Check("pretrained weights", label, OK,
                                f"not cached; downloadable on first use from {urls[name]}", ""))
        else:
            checks.append(Check("pretrained weights", label, NOTE,
                                f"not cached, not downloadable ({urls[name]}: "
                                f"{answers[urls[name]]}): weights 'auto' falls back to random "
                                f"weights, outputs marked", _fetch_command(name, root)))
    return checks


def _free(path):
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    while not os.path.exists(path):
        path = os.path.dirname(path) or os.sep
    return shutil.disk_usage(path).free


def check_folders():
    """The data home, the feature cache and the model cache, with free disk space."""
    from .utils import model_root, resolve_data_home

    checks = []
    folders = [("data home", "BRAIN2PIX_DATA", resolve_data_home()),
               ("model cache", "MXNET_HOME", model_root())]
    try:   # the feature cache's module imports MXNet: skipped when MXNet does not import
        from .evaluation.feature_cache import resolve_cache_dir

        folders.insert(1, ("feature cache", "BRAIN2PIX_CACHE", resolve_cache_dir("auto")))
    except (ImportError, OSError):
        pass
    for label, variable, path in folders:
        parent = path
        while not os.path.exists(parent):
            parent = os.path.dirname(parent) or os.sep
        free = _free(path)
        name = f"{label} (${variable})"
        detail = f"{path} ({'exists' if parent == path else 'created on first use'}; " \
                 f"{free / 1024 ** 3:.1f} GB free)"
        if not os.access(parent, os.W_OK):
            checks.append(Check("folders", name, MISSING, detail + ": not writable",
                                f"export {variable}=<a writable folder>"))
        elif free < MIN_FREE_BYTES:
            checks.append(Check("folders", name, NOTE, detail + ": under 2 GB free",
                                f"free disk space, or export {variable}=<a folder on another disk>"))
        else:
            checks.append(Check("folders", name, OK, detail, ""))
    return checks


def check_cpu(cpuinfo="/proc/cpuinfo"):
    """The CPU's vector extensions (x86 ``flags`` of ``/proc/cpuinfo``) and its core count."""
    flags = set()
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return [Check("CPU", "vector extensions", NOTE, f"{cpuinfo} not readable", "")]
    have = [f for f in VECTOR_EXTENSIONS if f in flags]
    lacking = [f for f in VECTOR_EXTENSIONS if f not in flags]
    detail = f"{os.cpu_count()} cores; {' '.join(have) or 'none of ' + ' '.join(VECTOR_EXTENSIONS)}" \
             + (f" (not: {' '.join(lacking)})" if lacking else "")
    if flags and "avx2" not in flags and "asimd" not in flags:
        return [Check("CPU", "vector extensions", NOTE, detail + ": no AVX2, oneDNN runs its "
                      "slower kernels", "use a machine with AVX2 for training")]
    return [Check("CPU", "vector extensions", OK, detail, "")]


def run_doctor(out=None, timeout=None):
    """Run every check, print the report and return the exit status (1 when something a default
    run needs is MISSING, else 0).

    Parameters
    ----------
    out : callable, optional
        Called with each line (default: print to stdout).
    timeout : float, optional
        Seconds each download probe may take (default ``PROBE_TIMEOUT``).
    """
    out = out or (lambda line: print(line, flush=True))
    out(f"brain2pix doctor: brain2pix_gluon {__version__}, Python {sys.version.split()[0]}, "
        f"{sys.executable}")
    checks = []
    section = None
    # the CUDA libraries first: on a CUDA build they decide whether MXNet imports
    for title, make in (("CUDA libraries", check_cuda_libraries), ("MXNet", check_mxnet),
                        ("ffmpeg", check_ffmpeg),
                        ("pretrained weights", lambda: check_pretrained(timeout)),
                        ("folders", check_folders), ("CPU", check_cpu)):
        try:
            found = make()
        except (ImportError, OSError) as exc:   # the model stores need an importable MXNet
            found = [Check(title, "not checked", NOTE, f"{type(exc).__name__}: {exc}",
                           "make MXNet import first (see above)")]
        for check in found:
            if check.section != section:
                section = check.section
                out(section)
            out(f"  {check.status:8s} {check.name:34s} {check.detail}")
            if check.fix:
                out(f"  {'':8s} {'':34s} fix: {check.fix}")
            checks.append(check)
    missing = [c for c in checks if c.status == MISSING]
    notes = [c for c in checks if c.status == NOTE]
    if missing:
        out(f"MISSING for a default run: {', '.join(c.name for c in missing)} (fixes above)")
        return 1
    out("Nothing a default run needs is missing" + (f"; {len(notes)} note(s) above" if notes
                                                     else "") + ".")
    return 0
