"""One discriminator step and one generator step (paper section 2.3; docs/method.md).

Both accept a batch split over devices: lists of NDArrays, one per context (a single NDArray is
treated as a list of one). Losses are batch means and ``trainer.step(n_devices)`` averages the
per-device gradients, which equals the reference ``trainer.step(1)`` on one device.

Back-propagation and the update go through a loss-scaling object (:mod:`.amp`): fp32 by default,
MXNet AMP's dynamic loss scaling for mixed precision. With ``sync=False`` the steps return the
losses as NDArrays, so the host need not wait for a step to finish before queueing the next one;
the caller reads them when it logs.
"""

import mxnet as mx
from mxnet import autograd

from .amp import FullPrecision
from .losses import feature_distance, l1_loss, sigmoid_bce

__all__ = ["generator_input", "pair", "update_discriminator", "update_generator"]


def pair(inputs, images):
    """concat(input, image) along channels: what the discriminator judges.

    The product with 1.0 is deliberate: MXNet 1.9.1's MKLDNN backward of a concat whose output
    feeds a convolution directly dies with SIGFPE when the channel total is a multiple of 8 and
    the split is not (e.g. 5 + 3 for one ROI); an elementwise op in between avoids that path.
    """
    return mx.nd.concat(inputs, images, dim=1) * 1.0


def _as_list(value):
    if value is None:
        return None
    return value if isinstance(value, (list, tuple)) else [value]


def _device_mean(losses, sync):
    """Mean of per-device losses, on the first device; a float when ``sync``."""
    ctx = losses[0].context
    mean = losses[0] if len(losses) == 1 else \
        mx.nd.add_n(*[loss.as_in_context(ctx) for loss in losses]) / len(losses)
    # float32 also under AMP, so that sums over an epoch neither overflow nor round away
    return float(mean.asscalar()) if sync else mean.astype("float32", copy=False)


def generator_input(rf_images, voxels=None, learned_rf=None, mask=None, include_rf=True):
    """The generator's input: the fixed RFSimages, plus the LearnedRF maps when given.

    Parameters
    ----------
    rf_images : NDArray, shape (N, R*T, S, S)
    voxels : NDArray, shape (N, T, V), optional
    learned_rf : LearnedRF, optional
        LearnedRF layers, or the Shen-like baseline's linear voxel->image layer.
    mask : NDArray, shape (1, R*T, S, S), optional
        The paper's eq. 4 variant: the learned maps only where some voxel's RF lands.
    include_rf : bool
        False for the Shen-like baseline: the linear layer's maps alone.
    """
    if learned_rf is None:
        return rf_images
    maps = learned_rf(voxels)
    if mask is not None:
        maps = mx.nd.broadcast_mul(maps, mask.as_in_context(maps.context))
    return rf_images + maps if include_rf else maps


def update_discriminator(net_g, net_d, trainer_d, history, rf_images, targets, voxels=None,
                         learned_rf=None, rf_mask=None, include_rf=True, scaler=None, sync=True):
    """One discriminator update; returns ``L_D`` (a float, or an NDArray of shape (1,) when
    ``sync`` is false).

    The fake images are made outside autograd recording, so the generator's BatchNorm layers use
    their running statistics here, as in the reference code; the (input, fake) pairs then pass
    through the history buffer.

    scaler : FullPrecision or DynamicLossScaling, optional
        Loss scaling of ``trainer_d`` (default: fp32).
    """
    scaler = scaler or FullPrecision(trainer_d)
    rf_images, targets, voxels = _as_list(rf_images), _as_list(targets), _as_list(voxels)
    pairs = []
    for k, (x, y) in enumerate(zip(rf_images, targets)):
        inp = generator_input(x, voxels[k] if voxels else None, learned_rf, rf_mask, include_rf)
        fake = net_g(inp)
        pairs.append((history.query(pair(inp, fake)), pair(inp, y)))
    losses = []
    with autograd.record():
        for fake_pair, real_pair in pairs:
            losses.append(0.5 * (sigmoid_bce(net_d(fake_pair), 0.0)
                                 + sigmoid_bce(net_d(real_pair), 1.0)))
    scaler.backward(losses)
    scaler.step(len(losses))
    return _device_mean(losses, sync)


def update_generator(net_g, net_d, trainer_g, feature_net, rf_images, targets, loss_cfg,
                     voxels=None, learned_rf=None, rf_mask=None, include_rf=True, scaler=None,
                     sync=True):
    """One generator (and LearnedRF) update.

    ``L_G = a * BCE(D(concat(x, G(x))), 1) + b_vgg * dist(VGG(G(x)), VGG(y)) + b_pix * L1(G(x), y)``.
    A term whose weight is 0 is not computed at all (the ablations). The target's VGG features are
    computed outside autograd recording: they need no gradient.

    scaler : FullPrecision or DynamicLossScaling, optional
        Loss scaling of ``trainer_g`` (default: fp32).
    sync : bool
        False returns NDArrays of shape (1,) instead of floats.

    Returns
    -------
    dict of str -> float
        ``total``, ``pixel`` (always reported) and, when their weights are non-zero,
        ``adversarial`` and ``feature`` (unweighted terms).
    """
    scaler = scaler or FullPrecision(trainer_g)
    rf_images, targets, voxels = _as_list(rf_images), _as_list(targets), _as_list(voxels)
    use_adv = loss_cfg.adversarial_weight != 0
    use_feat = loss_cfg.feature_weight != 0
    target_features = [feature_net(y) for y in targets] if use_feat else [None] * len(targets)
    totals, records = [], []
    with autograd.record():
        for k, (x, y) in enumerate(zip(rf_images, targets)):
            inp = generator_input(x, voxels[k] if voxels else None, learned_rf, rf_mask, include_rf)
            fake = net_g(inp)
            terms = {"pixel": l1_loss(fake, y)}
            total = loss_cfg.pixel_weight * terms["pixel"]
            if use_adv:
                terms["adversarial"] = sigmoid_bce(net_d(pair(inp, fake)), 1.0)
                total = total + loss_cfg.adversarial_weight * terms["adversarial"]
            if use_feat:
                terms["feature"] = feature_distance(feature_net(fake), target_features[k],
                                                   loss_cfg.feature_distance)
                total = total + loss_cfg.feature_weight * terms["feature"]
            totals.append(total)
            records.append(terms)
    scaler.backward(totals)
    scaler.step(len(totals))
    out = {"total": _device_mean(totals, sync)}
    for name in records[0]:
        out[name] = _device_mean([r[name] for r in records], sync)
    return out
