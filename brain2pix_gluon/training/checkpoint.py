"""Crash-safe checkpoints of a training run: everything needed to resume bit-for-bit on CPU.

Layout of ``RUN_DIR/checkpoints/``::

    ckpt-000007/            one complete checkpoint per folder, numbered in the order of saving
        net_g.params  net_d.params  learned_rf.params (LearnedRF only)
        trainer_g.states  trainer_d.states      Adam moments and update counts
        history.npz                             history buffer and its generator state
        extra_<name>.npz                        named extra states (see below)
        state.json                              epoch, step, global step, epoch loss sums,
                                                config, provenance
    LATEST                  the name of the newest complete folder ("ckpt-000007")

A save writes ``ckpt-N.partial/``, renames it to ``ckpt-N`` once every file is on disk, replaces
``LATEST`` atomically (``os.replace``) and only then deletes the older folders. At every instant
one complete checkpoint is therefore reachable: before the pointer moves it names the previous
folder, which still exists; after, the new one. A ``ckpt-N`` folder (without ``.partial``) is
complete by construction, so :func:`find_checkpoint` takes the highest-numbered one and says
whether ``LATEST`` agrees (it lags when a save stopped between the rename and the pointer). Run
directories of earlier versions (``checkpoints/latest/``) are still read.

Extra states: ``save_checkpoint(..., extra={"amp_loss_scaler": {"scale": np.array(...)}})``
stores each entry (a dict of arrays) as ``extra_<name>.npz``; :func:`restore_checkpoint` returns
them as the same dict of dicts, so a new piece of training state needs neither a new file format
nor a change here.
"""

import json
import os
import re
import shutil

import mxnet as mx
import numpy as np

from ..config import config_from_dict, config_to_dict
from ..errors import CheckpointError, params_load_problem
from ..utils import as_os_error, replacing

__all__ = ["save_checkpoint", "find_checkpoint", "load_checkpoint_state", "restore_checkpoint",
           "checkpoint_dir", "checkpoints_root", "epoch_weights_path", "saved_epochs"]

FILES = ("net_g.params", "net_d.params", "trainer_g.states", "trainer_d.states", "history.npz",
         "state.json")
POINTER = "LATEST"
LEGACY = "latest"
_NAME = re.compile(r"^ckpt-(\d{6,})$")


def checkpoints_root(run_dir):
    """``RUN_DIR/checkpoints``."""
    return os.path.join(os.fspath(run_dir), "checkpoints")


def _is_complete(directory):
    return os.path.isdir(directory) and all(os.path.exists(os.path.join(directory, f))
                                            for f in FILES)


def _numbered(root):
    """Complete-looking ``ckpt-N`` folders of ``root``, newest first, as (N, path)."""
    found = []
    if os.path.isdir(root):
        for name in os.listdir(root):
            match = _NAME.match(name)
            if match:
                found.append((int(match.group(1)), os.path.join(root, name)))
    return sorted(found, reverse=True)


def find_checkpoint(run_dir):
    """The newest complete checkpoint folder of a run, or None.

    Returns
    -------
    directory : str or None
    how : str
        How it was found, for the log: ``"named by LATEST"``; ``"newest complete folder
        (LATEST ...)"`` when the pointer is missing or lags behind (a save stopped between
        renaming its folder and moving the pointer); ``"legacy layout"`` (``checkpoints/latest``);
        ``"incomplete"`` (only folders with files missing: loading it raises); ``"none"``.
    """
    root = checkpoints_root(run_dir)
    try:
        with open(os.path.join(root, POINTER)) as handle:
            named = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        named = ""
    for _, directory in _numbered(root):
        if _is_complete(directory):
            if os.path.basename(directory) == named:
                return directory, f"named by {POINTER}"
            return directory, (f"newest complete folder ({POINTER} names {named!r})" if named
                               else f"newest complete folder ({POINTER} missing)")
    legacy = os.path.join(root, LEGACY)
    if _is_complete(legacy):
        return legacy, "legacy layout"
    # folders exist but none is complete (files deleted by hand): report it, never start afresh
    broken = [d for _, d in _numbered(root)] + ([legacy] if os.path.isdir(legacy) else [])
    if broken:
        return broken[0], "incomplete"
    return None, "none"


def epoch_weights_path(run_dir, name, epoch):
    """``RUN_DIR/weights/<name>_epochNNN.params``: a network's weights after ``epoch`` (kept every
    ``train.save_weights_every`` epochs, beside the checkpoints)."""
    return os.path.join(os.fspath(run_dir), "weights", f"{name}_epoch{int(epoch):03d}.params")


def saved_epochs(run_dir, name="net_g"):
    """The epochs whose weights of network ``name`` a run kept, in order.

    Returns
    -------
    list of int
    """
    import re

    folder = os.path.dirname(epoch_weights_path(run_dir, name, 0))
    pattern = re.compile(re.escape(name) + r"_epoch(\d+)\.params")
    found = []
    for entry in os.listdir(folder) if os.path.isdir(folder) else ():
        match = pattern.fullmatch(entry)
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def checkpoint_dir(run_dir):
    """The newest complete checkpoint folder of a run (``RUN_DIR/checkpoints/LATEST`` resolved).

    When the run has none yet, the path the pointer file would have (which does not exist).
    """
    directory, _ = find_checkpoint(run_dir)
    return directory or os.path.join(checkpoints_root(run_dir), POINTER)


def _fsync(path):
    """Flush a file (or a folder's entries) to disk; a no-op where the OS does not allow it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(run_dir, nets, trainers, history, state, extra=None):
    """Write a complete checkpoint, crash-safely (see the module docstring).

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
    extra : dict of str -> dict of str -> array_like, optional
        Named extra states (e.g. a loss scaler), each saved as ``extra_<name>.npz``.

    Returns
    -------
    str
        The new checkpoint folder.
    """
    root = checkpoints_root(run_dir)
    os.makedirs(root, exist_ok=True)
    for name in os.listdir(root):          # leftovers of a save that crashed
        if name.endswith(".partial"):
            path = os.path.join(root, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    numbered = _numbered(root)
    number = numbered[0][0] + 1 if numbered else 1
    final = os.path.join(root, f"ckpt-{number:06d}")
    tmp = final + ".partial"
    os.makedirs(tmp)
    try:
        _write_files(tmp, nets, trainers, history, state, extra)
    except BaseException as exc:
        converted = as_os_error(exc, getattr(exc, "checkpoint_file", tmp))
        # never leave a half-written folder behind (on a full disk it would keep the disk full)
        shutil.rmtree(tmp, ignore_errors=True)
        if converted is None:
            raise
        last, _ = find_checkpoint(run_dir)
        kept = (f"the last checkpoint {os.path.basename(last)} is kept; free some space, then "
                f"--resume" if last else "no checkpoint was saved yet")
        raise OSError(converted.errno, f"{converted.strerror} (checkpoint "
                                       f"{os.path.basename(final)} not saved and its partial "
                                       f"folder removed; {kept})",
                      converted.filename) from exc
    os.replace(tmp, final)
    _fsync(root)
    pointer = os.path.join(root, POINTER)
    with replacing(pointer, pointer + ".partial") as pointer_tmp, open(pointer_tmp, "w") as handle:
        handle.write(os.path.basename(final) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    _fsync(root)
    for _, older in numbered:
        shutil.rmtree(older, ignore_errors=True)
    shutil.rmtree(os.path.join(root, LEGACY), ignore_errors=True)
    return final


def _write_files(tmp, nets, trainers, history, state, extra):
    """Every file of a checkpoint into the folder ``tmp`` (state.json last), flushed to disk.

    A failed write gets the attribute ``checkpoint_file`` (the file being written), since MXNet's
    own errors name no file.
    """
    current = None
    try:
        for name, net in nets.items():
            if net is not None:
                current = os.path.join(tmp, f"{name}.params")
                net.save_parameters(current)
        for name, trainer in trainers.items():
            current = os.path.join(tmp, f"{name}.states")
            trainer.save_states(current)
        current = os.path.join(tmp, "history.npz")
        np.savez(current, **history.state_dict())
        for name, arrays in (extra or {}).items():
            if not re.match(r"^[A-Za-z0-9_]+$", name):
                raise CheckpointError(f"extra state name {name!r}: expected letters, digits or _")
            current = os.path.join(tmp, f"extra_{name}.npz")
            np.savez(current, **arrays)
        # state.json last: a folder with it is complete
        current = os.path.join(tmp, "state.json")
        with open(current, "w") as handle:
            json.dump(state, handle, indent=2, sort_keys=True)
        current = None
        for name in os.listdir(tmp):
            _fsync(os.path.join(tmp, name))
    except Exception as exc:
        if current is not None:
            exc.checkpoint_file = current
        raise


def load_checkpoint_state(path):
    """Read ``state.json`` of a checkpoint folder (or of the newest one of ``RUN_DIR``).

    Returns
    -------
    directory : str
    state : dict
    config : Config
    """
    path = os.fspath(path)
    directory = path
    if not any(os.path.exists(os.path.join(path, f)) for f in FILES):
        directory, _ = find_checkpoint(path)
        if directory is None:
            raise CheckpointError(
                f"checkpoint {path!s} not found: expected a checkpoint folder (with state.json) or "
                f"a run directory holding checkpoints/{POINTER} (made by `brain2pix train`)")
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

    Returns
    -------
    dict of str -> dict of str -> ndarray
        The named extra states (empty when there are none).

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
        except (AssertionError, mx.base.MXNetError) as exc:
            raise CheckpointError(f"checkpoint {directory!s}: {name}.params "
                                  f"{params_load_problem(exc)}") from exc
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
    extra = {}
    for name in sorted(os.listdir(directory)):
        if name.startswith("extra_") and name.endswith(".npz"):
            try:
                with np.load(os.path.join(directory, name)) as data:
                    extra[name[len("extra_"):-len(".npz")]] = {k: data[k] for k in data.files}
            except Exception as exc:
                raise CheckpointError(f"checkpoint {directory!s}: {name} is corrupt: {exc}") from exc
    return extra


def state_for(config, **values):
    """A checkpoint state dict holding the resolved config and ``values``."""
    return {"config": config_to_dict(config), **values}
