"""Run profiles: ``paper`` (the published configuration), ``quick`` and ``demo`` (minutes on 2
CPU cores).

A quick run keeps the architecture and losses but trains far fewer iterations (4 epochs of at
most 40), with a larger learning rate (1e-3 instead of 2e-4) and a smaller VGG input (64 instead of
224 pixels), and evaluates only the first 48 test frames. Every output it writes
is marked "QUICK RUN".

A demo run is what ``make demo`` trains: the quick run's schedule stretched to 24 short epochs,
with three further departures from the paper ([code!=paper], docs/method.md), each chosen by
measurement on the embedded data (docs/measurements.md):

* **pixel loss only** (no adversarial and no VGG term): in a few hundred iterations the
  discriminator and a randomly initialised VGG hold the generator in a texture phase, and
  without them an iteration costs a third of the time;
* **a U-Net of half the width** (``model.ngf=32``): three times faster per iteration on a CPU,
  and as good per iteration at this budget;
* **the learning rate decays linearly to zero over the last 12 epochs** (pix2pix's schedule),
  which settles the weights instead of leaving them wherever the last noisy step put them.

Every output it writes is marked "DEMO RUN".
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
    "demo": [
        "train.profile=demo",
        "train.epochs=24",
        "train.max_steps_per_epoch=40",
        "train.lr=0.001",
        "train.lr_decay_epochs=12",
        "loss.adversarial_weight=0",
        "loss.feature_weight=0",
        "model.ngf=32",
        "train.save_weights_every=6",
        "train.grid_samples=4",
        "evaluation.max_frames=48",
    ],
}


def apply_profile(config, profile):
    """Return ``config`` with a profile's overrides applied."""
    if profile not in PROFILES:
        raise ConfigError(f"--profile: expected one of {sorted(PROFILES)}, got {profile!r}")
    return apply_overrides(config, PROFILES[profile]) if PROFILES[profile] else config
