"""One vocabulary for where weights came from and for the marks every output carries.

Results made with randomly initialised feature networks, or with the quick profile, are not
comparable to the paper's numbers. Every output that can leave the machine — log lines, checkpoints,
reconstruction files, ``results.json``, tables, figures — says so with the marks defined here and
nowhere else.

Weight sources are strings: ``RANDOM_SOURCE`` for random initialisation (chosen explicitly, or the
fallback of the ``auto`` setting when no pretrained weights can be had, announced by one log line:
model_zoo/pretrained.py), ``"pretrained: <where>"`` for downloaded weights, or the path of a local
file.
"""

import os

__all__ = ["RANDOM_SOURCE", "QUICK_RUN", "DEMO_RUN", "SCIENCE_RUN", "PROFILE_MARKS", "TIME_SHUFFLED_CONTROL",
           "CONTROL_MARKS", "ROLES", "is_random", "random_mark", "run_marks",
           "marks_from_attrs", "caption_suffix", "code_version", "machine"]

RANDOM_SOURCE = "random (NOT pretrained: results are not comparable to the paper)"
QUICK_RUN = "QUICK RUN"
DEMO_RUN = "DEMO RUN (half-width networks, 4 epochs, VGG input 64 px: not the paper's settings)"
SCIENCE_RUN = ("SCIENCE RUN (half-width networks, 4 epochs, VGG input 64 px: not the paper's "
               "settings)")
# profile -> the mark of every output it makes
PROFILE_MARKS = {"quick": QUICK_RUN, "demo": DEMO_RUN, "science": SCIENCE_RUN}
# a run trained on time-shuffled fMRI (train.input_control): the learning check's control
TIME_SHUFFLED_CONTROL = "TIME-SHUFFLED fMRI CONTROL"
# the mark of each train.input_control other than "none"
CONTROL_MARKS = {"time_shuffled": TIME_SHUFFLED_CONTROL}

# What each pretrained network is used for; the mark names the role, so a reader knows which
# number is affected (a random encoding-feature net changes baseline 1, not a loss).
ROLES = {
    "feature_loss": "RANDOM FEATURE-LOSS WEIGHTS (VGG-19)",
    "evaluation": "RANDOM EVALUATION WEIGHTS (AlexNet, C3D)",
    "encoding_features": "RANDOM ENCODING-FEATURE WEIGHTS (C3D of baseline 1)",
}


def is_random(source):
    """True when a weight-source string describes randomly initialised weights.

    Parameters
    ----------
    source : str or dict of str -> str or None
        One source, or role -> source.
    """
    if isinstance(source, dict):
        return any(is_random(v) for v in source.values())
    return source is not None and str(source).startswith("random")


def random_mark(role):
    """The mark of a random-weight network used in ``role`` (a key of :data:`ROLES`; another role
    gets a generic mark naming it, so an unforeseen network is still marked)."""
    return ROLES.get(role, f"RANDOM WEIGHTS ({role})")


def run_marks(sources=None, profile="paper", input_control="none"):
    """Marks of an output made with the given weight sources, profile and input control.

    Parameters
    ----------
    sources : dict of str -> str, optional
        Role (a key of :data:`ROLES`) -> weight source. ``None`` values (a network that was not
        used, e.g. the VGG of a run without feature loss) are ignored.
    profile : str
        ``"paper"``, or a profile of :data:`PROFILE_MARKS` (marked).
    input_control : str
        ``train.input_control`` of the run: a control (``"time_shuffled"``) is marked.

    Returns
    -------
    list of str
        Sorted and unique.
    """
    marks = {random_mark(role) for role, src in (sources or {}).items() if is_random(src)}
    if profile in PROFILE_MARKS:
        marks.add(PROFILE_MARKS[profile])
    if input_control in CONTROL_MARKS:
        marks.add(CONTROL_MARKS[input_control])
    return sorted(marks)


def marks_from_attrs(attrs):
    """Marks of a file written by this package, from its stored provenance attributes.

    Parameters
    ----------
    attrs : dict
        Holds ``marks`` (written since marks exist), else ``weights`` (role -> source),
        ``profile`` and ``config`` (its ``train.input_control``).
    """
    if attrs.get("marks"):
        return sorted(set(attrs["marks"]))
    weights = attrs.get("weights") or {}
    config = attrs.get("config")
    train = config.get("train", {}) if isinstance(config, dict) else {}
    return run_marks(weights if isinstance(weights, dict) else {}, attrs.get("profile", "paper"),
                     train.get("input_control", "none") if isinstance(train, dict) else "none")


def caption_suffix(marks):
    """Text appended to a title or caption made from marked results ('' when there are none)."""
    marks = sorted(set(marks))
    return f" [{'; '.join(marks)}: not comparable to the paper's numbers]" if marks else ""


def code_version():
    """The package version and, when it runs from a git checkout, the commit it runs.

    Returns
    -------
    dict
        ``package_version``; ``git_commit`` (40 hex digits, with ``+ uncommitted changes`` when
        the checkout differs from it) or None when the package is not a git checkout or git is
        not installed.
    """
    import subprocess

    from . import __version__

    here = os.path.dirname(os.path.abspath(__file__))
    commit = None
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode == 0 and head.stdout.strip():
            commit = head.stdout.strip()
            dirty = subprocess.run(["git", "-C", here, "status", "--porcelain",
                                    "--untracked-files=no"], capture_output=True, text=True,
                                   timeout=10)
            if dirty.returncode == 0 and dirty.stdout.strip():
                commit += " + uncommitted changes"
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"package_version": __version__, "git_commit": commit}


def machine(gpus=""):
    """The machine a run ran on, as its outputs record it.

    Parameters
    ----------
    gpus : str
        The run's ``--gpus`` (empty: the CPU).

    Returns
    -------
    dict
        ``cpu`` (model name), ``cores``, ``platform``, ``gpus`` and ``mxnet`` (version, CPU or
        CUDA build, and its enabled features).
    """
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import mxnet as mx

        from .cuda_libraries import cuda_build

        build = cuda_build()
        features = mx.runtime.Features()
        enabled = [name for name in ("CUDA", "CUDNN", "NCCL", "MKLDNN", "OPENMP")
                   if features.is_enabled(name)]
        mxnet = (f"mxnet {mx.__version__}, {'CUDA (' + build[0] + ')' if build else 'CPU'} "
                 f"build; enabled: {', '.join(enabled) or 'none'}")
    except (ImportError, OSError, AttributeError) as exc:
        mxnet = f"not importable ({type(exc).__name__}: {exc})"
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "gpus": gpus or "none", "mxnet": mxnet}
