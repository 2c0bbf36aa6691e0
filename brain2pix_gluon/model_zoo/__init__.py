"""Networks of Brain2Pix, one per file, built by name through :func:`get_model`."""

from .fc_generator import FCGenerator, fc_generator
from .init import initialize_paper
from .learned_rf import LearnedRF, learned_rf
from .model_zoo import get_model, get_model_list, register_model
from .patch_discriminator import PatchDiscriminator, patch_discriminator
from .unet_generator import UnetGenerator, unet_generator
from .vgg_features import VGGFeatures, vgg_features

__all__ = ["get_model", "get_model_list", "register_model", "initialize_paper", "UnetGenerator",
           "unet_generator", "PatchDiscriminator", "patch_discriminator", "LearnedRF", "learned_rf",
           "VGGFeatures", "vgg_features", "FCGenerator", "fc_generator"]
