"""Experiment files shipped with the package (the repository's ``configs/`` links here)."""

import os

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))


def config_path(name):
    """Path of a shipped experiment file, e.g. ``config_path("fixed_rf")``."""
    path = os.path.join(CONFIG_DIR, f"{name}.yaml")
    if not os.path.exists(path):
        names = sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith(".yaml"))
        raise FileNotFoundError(f"no shipped config {name!r}; available: {names}")
    return path
