"""Build the networks of a configuration (generator, discriminator, LearnedRF / linear input)."""

import mxnet as mx
import numpy as np

from ..config import DataConfig
from ..model_zoo import get_model, initialize_paper

__all__ = ["dataset_mode", "build_networks", "uses_voxels", "uses_rf_images"]


def uses_voxels(config):
    """LearnedRF and the Shen-like baseline read the voxel vectors."""
    return config.model.variant in ("learned_rf", "shen")


def uses_rf_images(config):
    """Every variant but the Shen-like baseline feeds the fixed RFSimages to the generator."""
    return config.model.variant != "shen"


def learned_rf_mask(config, dataset, ctx=None):
    """The paper's eq. 4 mask when ``model.learned_rf_mask`` is set, else None.

    Parameters
    ----------
    dataset : RFSImageDataset
        Its ``rf_masks`` (R, S, S) mark the pixels at least one voxel of each ROI lands on.

    Returns
    -------
    NDArray, shape (1, R*T, S, S), or None
        1 where the LearnedRF maps may add to the input (channels ROI-major like the RFSimages).
    """
    if config.model.variant != "learned_rf" or not config.model.learned_rf_mask:
        return None
    mask = np.repeat(np.asarray(dataset.rf_masks, np.float32), dataset.n_trs, axis=0)[None]
    return mx.nd.array(mask, ctx=ctx or mx.cpu())


def dataset_mode(config):
    """The :class:`RFSImageDataset` mode a config needs."""
    if config.model.input == "synthetic":
        return "synthetic"
    return "voxels" if uses_voxels(config) else "rf"


def build_networks(config, in_channels, n_voxels=None, n_trs=DataConfig.n_trs,
                   size=DataConfig.image_size, ctx=None, seed=None):
    """Generator, discriminator and (when used) the voxel->image layer, initialised as the paper.

    Parameters
    ----------
    config : Config
    in_channels : int
        Channels of the generator input (R*T, or R for the synthetic input).
    n_voxels : sequence of int, optional
        Voxels per ROI (LearnedRF and Shen-like).
    n_trs, size : int
    ctx : list of mx.Context
    seed : int, optional
        Seeds MXNet's generator before initialisation (default ``config.train.seed``).

    Returns
    -------
    dict with keys ``net_g``, ``net_d``, ``learned_rf`` (None unless used)
    """
    ctx = ctx or [mx.cpu()]
    mx.random.seed(config.train.seed if seed is None else seed)
    m = config.model
    # fixed prefixes: parameter names are the same in every process and every instance
    if m.variant == "fully_connected":
        net_g = get_model("fc_generator", in_channels=in_channels, size=size,
                          hidden=m.fc_hidden, bn_momentum=m.bn_momentum, prefix="net_g_")
    else:
        net_g = get_model("unet_generator", in_channels=in_channels, ngf=m.ngf,
                          bn_momentum=m.bn_momentum, prefix="net_g_")
    net_d = get_model("patch_discriminator", in_channels=in_channels + 3, ndf=m.ndf,
                      bn_momentum=m.bn_momentum, prefix="net_d_")
    initialize_paper(net_g, m.init_sigma, ctx)
    initialize_paper(net_d, m.init_sigma, ctx)
    learned = None
    if uses_voxels(config) and config.model.input != "synthetic":
        learned = get_model("learned_rf", n_voxels=n_voxels, n_trs=n_trs, size=size,
                            prefix="learned_rf_")
        initialize_paper(learned, m.init_sigma, ctx)
    if config.train.hybridize:
        for net in (net_g, net_d, learned):
            if net is not None:
                net.hybridize(static_alloc=True)
    return {"net_g": net_g, "net_d": net_d, "learned_rf": learned}
