"""Atomic checkpoints of a training run: everything needed to resume bit-for-bit on CPU.

Layout of ``RUN_DIR/checkpoints/latest/``::

    net_g.params  net_d.params  learned_rf.params (LearnedRF only)
    trainer_g.states  trainer_d.states          Adam moments and update counts
    history.npz                                 history buffer and its generator state
    state.json                                  epoch, step, global step, config, provenance

A checkpoint is written into ``latest.partial/`` and renamed into place, so a crash while saving
leaves the previous checkpoint intact.
"""

import json
import os
import shutil

import numpy as np

from ..config import config_from_dict, config_to_dict
from ..errors import CheckpointError

__all__ = ["save_checkpoint", "load_checkpoint_state", "restore_checkpoint", "checkpoint_dir"]

FILES = ("net_g.params", "net_d.params", "trainer_g.states", "trainer_d.states", "history.npz",
         "state.json")


def checkpoint_dir(run_dir):
    """``RUN_DIR/checkpoints/latest``."""
    return os.path.join(run_dir, "checkpoints", "latest")


def save_checkpoint(run_dir, nets, trainers, history, state):
    """Write a complete checkpoint atomically.

    Parameters
    ----------
    run_dir : str
    nets : dict of str -> gluon.Block
        ``{"net_g": ..., "net_d": ..., "learned_rf": ...}`` (learned_rf optional).
    trainers : dict of str -> gluon.Trainer
        ``{"trainer_g": ..., "trainer_d": ...}``.
    history : HistoryBuffer
    state : dict
        JSON-serialisable (epoch, step, config, ...).
    """
    final = checkpoint_dir(run_dir)
    tmp = final + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name, net in nets.items():
        if net is not None:
            net.save_parameters(os.path.join(tmp, f"{name}.params"))
    for name, trainer in trainers.items():
        trainer.save_states(os.path.join(tmp, f"{name}.states"))
    np.savez(os.path.join(tmp, "history.npz"), **history.state_dict())
    with open(os.path.join(tmp, "state.json"), "w") as handle:
        json.dump(state, handle, indent=2, sort_keys=True)
    old = final + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(final):
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint_state(path):
    """Read ``state.json`` of a checkpoint directory (or of ``RUN_DIR``) after checking its files.

    Returns
    -------
    directory : str
    state : dict
    config : Config
    """
    directory = path
    if not any(os.path.exists(os.path.join(path, f)) for f in FILES):
        directory = checkpoint_dir(path)
    if not os.path.isdir(directory):
        raise CheckpointError(f"checkpoint {path!s} not found: expected a checkpoint directory "
                              f"(with state.json) or a run directory holding checkpoints/latest")
    missing = [f for f in FILES if not os.path.exists(os.path.join(directory, f))]
    if missing:
        raise CheckpointError(f"checkpoint {directory!s} is incomplete: missing {missing}")
    try:
        with open(os.path.join(directory, "state.json")) as handle:
            state = json.load(handle)
        config = config_from_dict(state["config"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {directory!s}: state.json is corrupt ({exc})") from exc
    return directory, state, config


def restore_checkpoint(directory, nets, trainers, history, ctx):
    """Load parameters, optimiser states and the history buffer saved by :func:`save_checkpoint`.

    Raises
    ------
    CheckpointError
        When a file is corrupt or its parameters do not match the networks (another config).
    """
    for name, net in nets.items():
        if net is None:
            continue
        path = os.path.join(directory, f"{name}.params")
        if not os.path.exists(path):
            raise CheckpointError(f"checkpoint {directory!s}: {name}.params missing for this model")
        try:
            net.load_parameters(path, ctx=ctx)
        except Exception as exc:
            raise CheckpointError(
                f"checkpoint {directory!s}: {name}.params does not match the network built from "
                f"the config (different model, ROIs or image size?): {exc}") from exc
    for name, trainer in trainers.items():
        try:
            trainer.load_states(os.path.join(directory, f"{name}.states"))
        except Exception as exc:
            raise CheckpointError(f"checkpoint {directory!s}: {name}.states is corrupt: {exc}") from exc
    try:
        with np.load(os.path.join(directory, "history.npz")) as data:
            history.load_state_dict({k: data[k] for k in data.files}, ctx=ctx[0] if isinstance(ctx, list) else ctx)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {directory!s}: history.npz is corrupt: {exc}") from exc


def config_of(state):
    """The resolved config stored in a checkpoint's state."""
    return config_from_dict(state["config"])


def state_for(config, **values):
    """A checkpoint state dict holding the resolved config and ``values``."""
    return {"config": config_to_dict(config), **values}
