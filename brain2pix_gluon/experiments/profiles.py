"""Run profiles: ``paper`` (the published configuration) and ``quick`` (minutes on 2 CPU cores).

A quick run keeps the architecture and losses but trains far fewer iterations (4 epochs of at
most 40), with a larger learning rate (1e-3 instead of 2e-4) and a smaller VGG input (64 instead of
224 pixels), and evaluates only the first 48 test frames. Every output it writes
is marked "QUICK RUN".
"""

from ..config import apply_overrides
from ..errors import ConfigError

__all__ = ["PROFILES", "apply_profile"]

PROFILES = {
    "paper": [],
    "quick": [
        "train.profile=quick",
        "train.epochs=4",
        "train.max_steps_per_epoch=40",
        "train.lr=0.001",
        "loss.feature_resize=64",
        "train.grid_samples=4",
        "evaluation.max_frames=48",
    ],
}


def apply_profile(config, profile):
    """Return ``config`` with a profile's overrides applied."""
    if profile not in PROFILES:
        raise ConfigError(f"--profile: expected one of {sorted(PROFILES)}, got {profile!r}")
    return apply_overrides(config, PROFILES[profile]) if PROFILES[profile] else config
