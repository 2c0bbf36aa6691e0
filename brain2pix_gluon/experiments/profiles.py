"""Run profiles: ``paper`` (the published configuration) and shorter ones for a CPU.

A **quick** run keeps the architecture and losses but trains far fewer iterations (4 epochs of at
most 40), with a larger learning rate (1e-3 instead of 2e-4) and a smaller VGG input (64 instead of
224 pixels), and evaluates only the first 48 test frames. Every output it writes is marked
"QUICK RUN".

A **science** run is what ``make science`` runs (``brain2pix experiment all --profile science``):
all seven experiments on the embedded world in at most two hours on 2 CPU cores. It keeps the
paper's loss terms (adversarial, VGG feature and pixel, weighted 1 / 100 / 1), optimiser, batch
sizes and the ablations' and data-size runs' settings, and departs from the paper in these ways
([code!=paper]), chosen for the time budget before any finding was looked at:

* **networks of half the width** (``model.ngf=32``, ``model.ndf=32``): about twice as fast per
  iteration on a CPU;
* **4 epochs** over the whole training set (the paper trains for days; its data-size runs 50
  epochs), at **learning rate 1e-3** (as the quick run; the paper's 2e-4 needs more iterations);
* **VGG-19 input of 64 pixels** instead of 224 (as the quick run): the feature loss costs a
  twelfth of the arithmetic;
* **four test clips** instead of two in the embedded data (more held-out scenes for the per-frame
  tests).

Every output it writes is marked "SCIENCE RUN".

A **demo** run is what ``make demo`` trains: the science run's settings for one model and its
control on the default embedded data (two test clips), with the generator saved after every
epoch for the learning curves. Every output it writes is marked "DEMO RUN".
"""

from ..config import PROFILES, apply_overrides
from ..errors import ConfigError

__all__ = ["PROFILES", "apply_profile"]


def apply_profile(config, profile):
    """Return ``config`` with a profile's overrides applied."""
    if profile not in PROFILES:
        raise ConfigError(f"--profile: expected one of {sorted(PROFILES)}, got {profile!r}")
    return apply_overrides(config, PROFILES[profile]) if PROFILES[profile] else config
