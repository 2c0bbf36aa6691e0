"""One policy for every pretrained network (VGG-19, AlexNet, C3D).

``weights`` is ``"pretrained"`` (Gluon model zoo / GluonCV download into ``MXNET_HOME`` on first
use), a path to a local ``.params`` file, or ``"random"`` — only when asked for explicitly; such
networks carry ``weights_source`` starting with ``"random"`` and every output made with them says
so. There is no silent fallback.
"""

import os

import mxnet as mx

from ..errors import WeightsUnavailableError, params_load_problem
from ..provenance import RANDOM_SOURCE, is_random

__all__ = ["build_with_weights", "RANDOM_MARK", "is_random"]

RANDOM_MARK = RANDOM_SOURCE   # kept under its old name for the modules that import it here

# What a failed download or cache read raises: network and file errors (requests' exceptions are
# OSErrors), Gluon's hash check (UserWarning), the model store's hash check (ValueError) and
# MXNet's own loader. Anything else is a bug and is not dressed up as "no internet".
_DOWNLOAD_ERRORS = (OSError, UserWarning, ValueError, mx.base.MXNetError)


def build_with_weights(name, weights, build, build_pretrained, init=None, ctx=None, seed=0):
    """Build a network under the weights policy.

    Parameters
    ----------
    name : str
        Human-readable model name for messages (e.g. ``"vgg19"``).
    weights : str
        ``"pretrained"``, ``"random"`` or a path to a ``.params`` file.
    build : callable
        ``build()`` returns the network without weights.
    build_pretrained : callable
        ``build_pretrained(root)`` returns the network with downloaded weights.
    init : mx.init.Initializer, optional
        Used for ``"random"``.
    ctx : mx.Context, optional
    seed : int
        Seed of the random initialisation.

    Returns
    -------
    net : gluon.Block
    source : str
        Where the weights came from.
    """
    ctx = ctx or mx.cpu()
    if weights == "random":
        net = build()
        mx.random.seed(seed)
        net.initialize(init or mx.init.Xavier(), ctx=ctx)
        return net, RANDOM_MARK
    if weights == "pretrained":
        root = os.path.join(os.environ.get("MXNET_HOME", os.path.join("~", ".mxnet")), "models")
        try:
            net = build_pretrained(os.path.expanduser(root))
        except _DOWNLOAD_ERRORS as exc:
            raise WeightsUnavailableError(
                f"pretrained weights for {name} could not be loaded or downloaded into {root} "
                f"({type(exc).__name__}: {exc}). Either run once with internet access (they are "
                f"cached in $MXNET_HOME/models), or download the .params file elsewhere and pass "
                f"its path as the weights setting, or set the weights to 'random' explicitly for "
                f"tests and smoke runs (outputs are then marked as random-weight results).") from exc
        net.collect_params().reset_ctx(ctx)
        return net, f"pretrained ({name}, downloaded model-zoo weights)"
    path = os.path.expanduser(str(weights))
    if not os.path.isfile(path):
        raise WeightsUnavailableError(
            f"weights for {name}: {weights!r} is neither 'pretrained', 'random' nor an existing "
            f".params file")
    net = build()
    try:
        net.load_parameters(path, ctx=ctx, allow_missing=False, ignore_extra=True)
    except (AssertionError, mx.base.MXNetError) as exc:
        raise WeightsUnavailableError(f"weights for {name}: {path} "
                                      f"{params_load_problem(exc)}") from exc
    return net, f"file ({name}: {path})"
