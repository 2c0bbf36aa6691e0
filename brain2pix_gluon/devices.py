"""The devices a command runs on: ``--gpus`` as MXNet contexts."""

import mxnet as mx

from .errors import ConfigError

__all__ = ["make_contexts"]


def make_contexts(gpus=""):
    """``--gpus`` as contexts: ``"0,1"`` -> [gpu(0), gpu(1)]; empty -> [cpu()].

    Raises
    ------
    ConfigError
        For a list that is not of integers, or GPUs this MXNet does not see.
    """
    gpus = str(gpus or "").strip()
    if not gpus:
        return [mx.cpu()]
    try:
        ids = [int(g) for g in gpus.split(",") if g.strip()]
    except ValueError:
        raise ConfigError(f"--gpus: expected a comma-separated list of integers, got {gpus!r}") from None
    if mx.context.num_gpus() < max(ids) + 1:
        raise ConfigError(f"--gpus {gpus}: this MXNet sees {mx.context.num_gpus()} GPU(s); install "
                          f"mxnet-cu112 (pip install -e .[cu112]) on a CUDA 11.2 machine")
    return [mx.gpu(i) for i in ids]
