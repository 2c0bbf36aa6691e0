"""Registry of the package's networks: ``get_model(name, **kwargs)``."""

from ..errors import ConfigError
from .fc_generator import fc_generator
from .learned_rf import learned_rf
from .patch_discriminator import patch_discriminator
from .unet_generator import unet_generator

__all__ = ["get_model", "get_model_list", "register_model"]

# name -> builder; the builders take the paper's hyper-parameters as keyword arguments

_MODELS = {
    "unet_generator": unet_generator,
    "patch_discriminator": patch_discriminator,
    "learned_rf": learned_rf,
    "fc_generator": fc_generator,
}


def register_model(name, builder):
    """Add a builder under ``name``, for networks defined outside the package.

    Raises
    ------
    ConfigError
        When ``name`` is already taken (a silent replacement would change what every config
        naming it builds).
    """
    if name.lower() in _MODELS:
        raise ConfigError(f"register_model: model name {name!r} is already registered")
    _MODELS[name.lower()] = builder
    return builder


def get_model(name, **kwargs):
    """Build a registered network.

    Parameters
    ----------
    name : str
        One of :func:`get_model_list`.
    **kwargs
        Passed to the builder (e.g. ``in_channels``).

    Raises
    ------
    ConfigError
        For an unknown name; the message lists every valid one.
    """
    key = name.lower()
    if key not in _MODELS:
        raise ConfigError(f"model {name!r} is not registered; valid names are: "
                         f"{', '.join(sorted(_MODELS))}")
    return _MODELS[key](**kwargs)


def get_model_list():
    """Names accepted by :func:`get_model`."""
    return sorted(_MODELS)
