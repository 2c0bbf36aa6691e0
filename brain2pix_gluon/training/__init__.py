"""GAN training of Brain2Pix: losses, history buffer, step functions, trainer, checkpoints."""

from .history import HistoryBuffer
from .losses import sigmoid_bce, l1_loss, feature_distance
from .steps import update_discriminator, update_generator

__all__ = ["HistoryBuffer", "sigmoid_bce", "l1_loss", "feature_distance", "update_discriminator",
           "update_generator"]
