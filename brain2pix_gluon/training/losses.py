"""Loss terms of Brain2Pix (paper section 3.2.1; docs/method.md section 5): adversarial BCE, pixel L1 and VGG feature distance."""

import mxnet as mx

from ..errors import ConfigError

__all__ = ["sigmoid_bce", "l1_loss", "feature_distance"]


def sigmoid_bce(logits, target):
    """Sigmoid binary cross-entropy on logits, averaged over all patch outputs.

    Parameters
    ----------
    logits : NDArray, shape (N, 1, h, w)
    target : float
        0 (fake) or 1 (real).

    Returns
    -------
    NDArray, shape (1,)
    """
    F = mx.nd
    # log(1 + exp(-|x|)) + max(x, 0) - x * t: the numerically stable form
    loss = F.relu(logits) - logits * target + F.Activation(-F.abs(logits), act_type="softrelu")
    return F.mean(loss)


def l1_loss(prediction, target):
    """Mean absolute difference over all elements; returns shape (1,)."""
    return mx.nd.mean(mx.nd.abs(prediction - target))


def feature_distance(features, target_features, kind="l1"):
    """Distance between VGG features.

    Parameters
    ----------
    features, target_features : NDArray, same shape
    kind : {"l1", "l2"}
        "l1": mean absolute difference (the authors' code, default); "l2": mean squared
        difference (the paper's "Euclidean distance" as a loss).

    Returns
    -------
    NDArray, shape (1,)
    """
    diff = features - target_features
    if kind == "l1":
        return mx.nd.mean(mx.nd.abs(diff))
    if kind == "l2":
        return mx.nd.mean(mx.nd.square(diff))
    raise ConfigError(f"loss.feature_distance: expected 'l1' or 'l2', got {kind!r}")
