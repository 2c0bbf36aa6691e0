"""The embedded simulated dataset, simulated and prepared once and cached.

Its location is resolved from an argument, then ``$BRAIN2PIX_DATA``, then
``~/.cache/brain2pix_gluon``; the folder name holds a hash of the simulation and data settings and
of the simulator's version, so different settings (or a simulator that writes data of another
shape) never share a cache and the experiment scripts share one when they agree.
"""

import hashlib
import json
import os

from ..config import config_to_dict
from ..preprocessing.prepare import prepare_dataset
from .simulation import SIMULATOR_VERSION, read_labels, simulate_dataset
from ..utils import get_logger, resolve_data_home

__all__ = ["simulated_dataset", "embedded_labels", "raw_and_prepared"]


def _key(config):
    d = config_to_dict(config)
    blob = json.dumps({"simulation": d["simulation"], "data": d["data"],
                       "simulator": SIMULATOR_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def simulated_dataset(config, data_home=None, show_progress=True):
    """Simulate (if needed) and prepare (if needed) the embedded dataset.

    Parameters
    ----------
    config : Config
        Its ``simulation`` and ``data`` sections define the dataset.
    data_home : str, optional

    Returns
    -------
    str
        The prepared directory holding ``train.h5`` and ``test.h5``.
    """
    root = os.path.join(resolve_data_home(data_home), f"simulated-{_key(config)}")
    raw, prepared = raw_and_prepared(root)
    if not os.path.isdir(raw):      # the simulator renames its folder into place when complete
        get_logger().info("simulating the embedded dataset into %s", raw)
        simulate_dataset(raw, config.simulation, config.data, show_progress)
    prepare_dataset(raw, prepared, config, show_progress=show_progress)
    return prepared


def raw_and_prepared(root):
    """The raw (simulated) and prepared folders of an embedded dataset's folder."""
    return os.path.join(root, "raw"), os.path.join(root, "prepared")


def embedded_labels(prepared):
    """The world's per-frame labels of an embedded dataset, from its prepared folder.

    Parameters
    ----------
    prepared : str
        The folder :func:`simulated_dataset` returned.

    Returns
    -------
    dict
        :func:`~.simulation.read_labels` of the dataset it was prepared from.
    """
    return read_labels(raw_and_prepared(os.path.dirname(os.path.abspath(prepared)))[0])
