"""Run profiles: ``paper`` (the published configuration) and ``quick`` (minutes on 2 CPU cores).

A quick run keeps the architecture and losses but trains far fewer iterations on a smaller VGG
input; every output it writes is marked "QUICK RUN".
"""

from .config import apply_overrides
from .errors import ConfigError

__all__ = ["PROFILES", "apply_profile"]

PROFILES = {
    "paper": [],
    "quick": [
        "train.profile=quick",
        "train.epochs=3",
        "train.max_steps_per_epoch=40",
        "loss.feature_resize=96",
        "train.grid_samples=4",
    ],
}


def apply_profile(config, profile):
    """Return ``config`` with a profile's overrides applied."""
    if profile not in PROFILES:
        raise ConfigError(f"--profile: expected one of {sorted(PROFILES)}, got {profile!r}")
    return apply_overrides(config, PROFILES[profile]) if PROFILES[profile] else config
