"""The one inference path: the generator of a checkpoint applied to data.

:func:`generate` is what the trainer's test-loss and grid pictures and ``brain2pix reconstruct``
all call; :func:`load_generator` rebuilds a checkpoint's networks for inference;
:func:`reconstruct` writes a split's reconstructions as HDF5, MP4 and GIF.
"""

import os

import mxnet as mx
import numpy as np

from ..config import DataConfig
from ..data.dataset import RFSImageDataset
from ..errors import CheckpointError, params_load_problem
from ..io.prepared import PreparedSplit
from ..io.reconstructions import RECONSTRUCTION_FILES, write_reconstructions
from ..io.video import write_gif, write_video
from ..locking import FolderLock
from ..plotting import input_preview, side_by_side
from ..provenance import run_marks
from ..utils import get_logger, progress
from .builder import build_networks, dataset_mode, learned_rf_mask, uses_rf_images
from .checkpoint import epoch_weights_path, load_checkpoint_state, saved_epochs
from .steps import generator_input

__all__ = ["generate", "load_generator", "reconstruct", "reconstruct_dataset",
           "reconstruct_saved_epochs"]


def generate(nets, rf_images, voxels=None, include_rf=True, rf_mask=None):
    """Reconstructions of one batch on one device, in inference mode.

    Parameters
    ----------
    nets : dict
        ``net_g`` and ``learned_rf`` (or None).
    rf_images : NDArray, shape (N, R*T, S, S)
    voxels : NDArray, shape (N, T, V), optional
        The ROI voxels (LearnedRF and the Shen-like baseline).
    include_rf : bool
        False for generators that take no RFSimages (the Shen-like baseline).
    rf_mask : NDArray, shape (1, R*T, S, S), optional
        The paper's eq. 4 mask of the LearnedRF maps (``model.learned_rf_mask``).

    Returns
    -------
    NDArray, shape (N, 3, S, S)
    """
    inp = generator_input(rf_images, voxels, nets["learned_rf"], rf_mask, include_rf)
    return nets["net_g"](inp)


def load_generator(checkpoint, n_voxels=None, in_channels=None, n_trs=DataConfig.n_trs,
                   size=DataConfig.image_size, ctx=None):
    """Networks of a checkpoint, ready for inference.

    Parameters
    ----------
    checkpoint : str
        Run directory or checkpoint directory.

    Returns
    -------
    nets : dict
        ``net_g`` and ``learned_rf`` (or None) with the checkpoint's parameters.
    config : Config
    state : dict
    """
    ctx = ctx or mx.cpu()
    directory, state, config = load_checkpoint_state(checkpoint)
    nets = build_networks(config, in_channels, n_voxels, n_trs, size, [ctx])
    for name in ("net_g", "learned_rf"):
        if nets[name] is None:
            continue
        try:
            nets[name].load_parameters(os.path.join(directory, f"{name}.params"), ctx=ctx)
        except (AssertionError, mx.base.MXNetError) as exc:
            raise CheckpointError(f"checkpoint {directory}: {name}.params "
                                  f"{params_load_problem(exc)}") from exc
    return nets, config, state


def reconstruct_dataset(nets, config, dataset, batch_size=16, ctx=None, show_progress=True):
    """Reconstructions of every sample of a dataset, in order.

    Returns
    -------
    inputs, reconstructions, targets : ndarray
        Shapes (n, C, S, S), (n, 3, S, S), (n, 3, S, S).
    """
    ctx = ctx or mx.cpu()
    include_rf = uses_rf_images(config)
    rf_mask = learned_rf_mask(config, dataset, ctx)
    inputs, recons, targets = [], [], []
    starts = range(0, len(dataset), batch_size)
    for start in progress(starts, desc="reconstruct", enabled=show_progress, unit="batch"):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        parts = [np.stack([it[k] for it in items]) for k in range(len(items[0]))]
        voxels = mx.nd.array(parts[1], ctx=ctx) if len(parts) == 3 else None
        x = mx.nd.array(parts[0], ctx=ctx)
        recons.append(generate(nets, x, voxels, include_rf, rf_mask).asnumpy())
        inputs.append(parts[0])
        targets.append(parts[-1])
    return np.concatenate(inputs), np.concatenate(recons), np.concatenate(targets)


def reconstruct_saved_epochs(run_dir, dataset, batch_size=16, ctx=None, show_progress=False):
    """The generator a run kept after each epoch, applied to a dataset: a checkpoint sweep.

    Parameters
    ----------
    run_dir : str
        A training run's folder: its checkpoint gives the networks' configuration, and
        ``weights/`` (:func:`~.checkpoint.epoch_weights_path`) the weights of each kept epoch
        (of ``net_g`` and, where there is one, of the LearnedRF layers).
    dataset : RFSImageDataset
        The samples to reconstruct (e.g. the test split).

    Yields
    ------
    epoch : int
    reconstructions, targets : ndarray, shape (n, 3, S, S)

    Raises
    ------
    CheckpointError
        When the run kept no epoch's weights.
    """
    ctx = ctx or mx.cpu()
    epochs = saved_epochs(run_dir)
    if not epochs:
        raise CheckpointError(f"{os.path.dirname(epoch_weights_path(run_dir, 'net_g', 0))} holds "
                              f"no net_g_epochNNN.params; train the run first (with "
                              f"train.save_weights_every > 0)")
    nets, config, _ = load_generator(run_dir, dataset.n_voxels, dataset.in_channels,
                                     dataset.n_trs, dataset.size, ctx)
    for epoch in progress(epochs, desc="epochs", enabled=show_progress, unit="epoch"):
        for name in ("net_g", "learned_rf"):
            if nets[name] is not None:
                nets[name].load_parameters(epoch_weights_path(run_dir, name, epoch), ctx=ctx)
        _, recon, targets = reconstruct_dataset(nets, config, dataset, batch_size, ctx, False)
        yield epoch, recon, targets


def reconstruct(checkpoint, prepared_dir, out_dir, split="test", batch_size=16, gif_frames=300,
                ctx=None, show_progress=True):
    """Write ``OUT/reconstructions.h5``, ``OUT/reconstructions.mp4`` and ``.gif``.

    Parameters
    ----------
    checkpoint : str
        Run directory (uses ``checkpoints/LATEST``) or a checkpoint directory.
    prepared_dir : str
        Folder holding ``<split>.h5``.
    out_dir : str
    gif_frames : int
        At most this many frames go into the GIF (the MP4 holds them all).

    Returns
    -------
    dict of str -> str
        Paths of the written files.
    """
    with FolderLock(out_dir, "brain2pix reconstruct", "OUT"):    # one writer per folder
        return _reconstruct(checkpoint, prepared_dir, out_dir, split, batch_size, gif_frames,
                            ctx or mx.cpu(), show_progress)


def _reconstruct(checkpoint, prepared_dir, out_dir, split, batch_size, gif_frames, ctx,
                 show_progress):
    _, _, config = load_checkpoint_state(checkpoint)
    path = os.path.join(prepared_dir, f"{split}.h5")
    dataset = RFSImageDataset(path, config.data.rois, 1.0, dataset_mode(config))
    nets, config, state = load_generator(checkpoint, dataset.n_voxels, dataset.in_channels,
                                         dataset.n_trs, dataset.size, ctx)
    inputs, recons, targets = reconstruct_dataset(nets, config, dataset, batch_size, ctx,
                                                  show_progress)
    run_names = PreparedSplit(path).run_names
    os.makedirs(out_dir, exist_ok=True)
    provenance = state.get("provenance", {})
    weights = {"feature_loss": provenance.get("feature_weights", "unknown")}
    attrs = {"model": config.name, "variant": config.model.variant, "weights": weights,
             "marks": run_marks(weights, config.train.profile, config.train.input_control),
             "profile": config.train.profile, "config": state["config"],
             "source": os.path.abspath(path), "checkpoint": os.path.abspath(checkpoint),
             "epoch": int(state["epoch"]), "step": int(state["step"])}
    previews = (input_preview(inputs, len(dataset.rois)) * 255 + 0.5).astype(np.uint8)
    h5_path = write_reconstructions(os.path.join(out_dir, RECONSTRUCTION_FILES["h5"]), recons,
                                    targets, dataset.samples.array, run_names, attrs, previews)
    frames = side_by_side(inputs, recons, targets, len(dataset.rois))
    mp4 = write_video(os.path.join(out_dir, RECONSTRUCTION_FILES["mp4"]), frames,
                      fps=1.0 / config.data.tr)
    gif = write_gif(os.path.join(out_dir, RECONSTRUCTION_FILES["gif"]), frames[:gif_frames],
                    fps=1.0 / config.data.tr)
    get_logger().info("reconstructions of %d %s samples written to %s", len(recons), split, out_dir)
    return {"h5": h5_path, "mp4": mp4, "gif": gif}
