"""How both linear models of the package choose their ridge penalty.

The Nishimoto-like encoding model (:class:`~.nishimoto.RidgeEncoder`, voxels from C3D features)
and the ridge floor (:class:`~.ridge.RidgeDecoder`, frames from RFSimages) each try a grid of
penalties on held-out training samples and keep the one whose predictions correlate best with
the held-out truth, on average (Pearson r, :func:`~brain2pix_gluon.evaluation.metrics.pearson_rows`;
the encoder averages over voxels, the decoder over frames). Ties go to the first of the grid.
"""

import numpy as np

from ..errors import ConfigError

__all__ = ["choose_penalty", "check_penalties"]


def check_penalties(penalties, name="penalties"):
    """The grid as a tuple of floats; a clear error for an empty grid or a bad value.

    Raises
    ------
    ConfigError
        Naming ``name``, when the grid is empty or holds a value that is not finite and > 0.
    """
    values = tuple(float(v) for v in penalties)
    if not values or any(not np.isfinite(v) or v <= 0 for v in values):
        raise ConfigError(f"{name}: expected positive finite numbers, got {list(penalties)}")
    return values


def choose_penalty(penalties, validation_r):
    """The penalty whose held-out predictions correlate best with the truth.

    Parameters
    ----------
    penalties : sequence of float
    validation_r : callable
        ``validation_r(penalty)`` -> per-item Pearson r of the held-out predictions, shape
        (n_items,) (NaN for an item without variance is ignored).

    Returns
    -------
    penalty : float
    scores : dict of float -> float
        The mean validation r of every penalty tried.
    """
    scores = {float(p): float(np.nanmean(validation_r(p))) for p in penalties}
    return max(scores, key=scores.get), scores
