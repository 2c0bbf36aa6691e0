"""Initialisation of the Brain2Pix networks (docs/method.md section 4).

Networks never initialise themselves: call :func:`initialize_paper` once after construction.
"""

import mxnet as mx

__all__ = ["initialize_paper"]


def initialize_paper(net, sigma=0.02, ctx=None, force_reinit=False):
    """Every weight ~ N(0, sigma), BatchNorm gamma ~ N(1, sigma), biases and beta 0.

    Parameters
    ----------
    net : gluon.Block
    sigma : float
        0.02 in the paper's code.
    ctx : mx.Context or list of mx.Context, optional
    force_reinit : bool

    Notes
    -----
    Draws from MXNet's global random generator: call ``mx.random.seed`` first for reproducibility.
    """
    ctx = ctx or mx.cpu()
    net.initialize(mx.init.Normal(sigma), ctx=ctx, force_reinit=force_reinit)
    for name, param in net.collect_params().items():
        if name.endswith("gamma"):
            first = param.list_data()[0]
            value = 1.0 + sigma * mx.nd.random.normal(shape=first.shape, ctx=first.context)
            param.set_data(value)
    return net
