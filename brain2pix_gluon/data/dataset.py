"""A Gluon ``Dataset`` over a prepared split (see :mod:`brain2pix_gluon.io.prepared`)."""

import os

import numpy as np
from mxnet import gluon

from ..errors import ConfigError, DataError, check_choice
from ..io.prepared import PreparedArrays, PreparedSplit
from ..preprocessing.receptive_fields import rf_pixel_indices, target_is_transposed

__all__ = ["RFSImageDataset", "EpochSampler", "Subset", "with_recorded_tr", "sets_tr"]

MODES = ("rf", "voxels", "synthetic")


class RFSImageDataset(gluon.data.Dataset):
    """Samples of a prepared split.

    Parameters
    ----------
    path : str
        ``train.h5`` or ``test.h5`` written by ``brain2pix prepare``.
    rois : sequence of str, optional
        ROI subset in the file's order (e.g. ``("V1",)`` gives 5 input channels); all by default.
    fraction : float
        Keep the leading ``fraction`` of the samples (the data-size experiment).
    mode : {"rf", "voxels", "synthetic"}
        ``"rf"``: ``(rf_images [R*T, S, S], target [3, S, S])``;
        ``"voxels"``: ``(rf_images, voxels [T, sum of ROI voxels], target)`` for LearnedRF and
        the Shen-like baseline; ``"synthetic"``: experiment 1, ``(inputs [R, S, S], target)`` where
        each ROI channel holds the RGB sum of the target at that ROI's RF pixels (eq. 2 applied
        to RF-sampled pixels) and 0 elsewhere. With the file's ``rf_layout`` =
        "authors_fixed_rf" the targets are transposed (C, W, H), as in the authors' FixedRF code.
    in_memory : bool or "auto"
        Load the arrays into memory ("auto": when the file is under 1 GiB).

    Notes
    -----
    Channels are ROI-major: V1 at TR 0..T-1, then V2, then V3 (paper section 3.2;
    docs/method.md section 1). The HDF5 file is opened lazily in each process, so the dataset
    works with ``DataLoader(num_workers > 0)``.
    """

    def __init__(self, path, rois=None, fraction=1.0, mode="rf", in_memory="auto"):
        self.path = os.fspath(path)
        self.mode = check_choice(mode, "mode", MODES)
        split = PreparedSplit(self.path)
        self.file_rois, self.size = split.rois, split.image_size
        self.config, self.split = split.config, split.split
        self.tr = split.tr
        self.n_voxels_all = split.n_voxels
        centres = split.rf_centres()
        samples = split.samples
        n_volumes = split.n_volumes
        self.rois = tuple(rois) if rois else self.file_rois
        for roi in self.rois:
            if roi not in self.file_rois:
                raise DataError(f"rois: {roi!r} is not in {self.path} (it holds {list(self.file_rois)})")
        self.roi_index = [self.file_rois.index(r) for r in self.rois]
        if sorted(self.roi_index) != self.roi_index:
            raise DataError(f"rois: expected the file's order {list(self.file_rois)}, got {list(self.rois)}")
        self.n_trs = split.n_trs
        if not 0 < fraction <= 1:
            raise DataError(f"fraction: expected 0 < fraction <= 1, got {fraction}")
        n_keep = max(1, int(round(fraction * len(samples))))
        self.samples = samples[:n_keep]
        if len(self.samples) and self.samples.volume_row.max() + self.n_trs > n_volumes:
            raise DataError(f"{self.path}: /samples points past the end of /rf_images "
                            f"({n_volumes} volumes); the file is inconsistent, prepare it again")
        self.n_voxels = tuple(self.n_voxels_all[r] for r in self.rois)
        layout = split.rf_layout
        # the authors' FixedRF training transposes the targets to match its x-first maps
        self.transpose_targets = target_is_transposed(layout)
        self.rf_masks = np.zeros((len(self.rois), self.size, self.size), np.float32)
        for k, roi in enumerate(self.rois):
            rows, cols = rf_pixel_indices(centres[roi][:, 0], centres[roi][:, 1], self.size, layout)
            self.rf_masks[k, rows, cols] = 1.0
        if in_memory == "auto":
            in_memory = os.path.getsize(self.path) < (1 << 30)
        self.in_memory = bool(in_memory)
        self._arrays = None
        self._pid = None

    @property
    def in_channels(self):
        """Channels of the network input: R*T (fMRI) or R (synthetic)."""
        return len(self.rois) * (1 if self.mode == "synthetic" else self.n_trs)

    def sample_index(self):
        """The ``/samples`` table of the kept samples as a dict of columns."""
        return self.samples.as_dict()

    def _source(self):
        # an open file belongs to one process: reopen after a fork (DataLoader workers)
        if self._arrays is None or (not self.in_memory and self._pid != os.getpid()):
            self._arrays = PreparedArrays(self.path, self.rois, self.in_memory)
            self._pid = os.getpid()
        return self._arrays

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, idx):
        src = self._source()
        target = np.asarray(src.frames(int(self.samples.frame_row[idx])), np.float32)
        if self.transpose_targets:
            target = np.ascontiguousarray(target.transpose(0, 2, 1))  # (C, H, W) -> (C, W, H)
        if self.mode == "synthetic":
            return self.rf_masks * target.sum(axis=0, keepdims=True), target
        window = slice(int(self.samples.volume_row[idx]),
                       int(self.samples.volume_row[idx]) + self.n_trs)
        stack = np.asarray(src.rf_images(window), np.float32)
        stack = stack[:, self.roi_index] if len(self.roi_index) != len(self.file_rois) else stack
        rf = np.ascontiguousarray(stack.transpose(1, 0, 2, 3)).reshape(-1, self.size, self.size)
        if self.mode == "rf":
            return rf, target
        voxels = np.concatenate(
            [np.asarray(src.voxels(r, window), np.float32) for r in self.rois],
            axis=1)
        return rf, voxels, target

    def __getstate__(self):
        state = dict(self.__dict__)
        if not self.in_memory:
            state["_arrays"] = None
        state["_pid"] = None
        return state


class Subset(gluon.data.Dataset):
    """The first ``n`` samples of a dataset; every other attribute is the dataset's.

    Parameters
    ----------
    dataset : RFSImageDataset
    n : int
    """

    def __init__(self, dataset, n):
        self.dataset, self.n = dataset, min(int(n), len(dataset))

    def __getattr__(self, name):
        return getattr(self.__dict__["dataset"], name)

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        if not 0 <= idx < self.n:
            raise IndexError(idx)
        return self.dataset[idx]


def with_recorded_tr(config, path, explicit=False):
    """``config`` with ``data.tr`` set to the TR the prepared data were recorded at.

    The TR belongs to the recording (vim-2: the release's 1 s), and ``prepare`` records it; a
    run trained on the data then saves it with its checkpoint (reconstruction videos play at one
    frame per TR).

    Parameters
    ----------
    config : Config
    path : str
        A prepared split.
    explicit : bool
        ``data.tr`` was given by the user: a value other than the recorded one is refused.

    Raises
    ------
    ConfigError
        An explicit ``data.tr`` that disagrees with the prepared data.
    """
    from ..config import with_changes
    from ..utils import get_logger

    recorded = PreparedSplit(path).tr
    if recorded is None or abs(recorded - config.data.tr) < 1e-9:
        return config
    if explicit:
        raise ConfigError(f"data.tr: the prepared data {path} were recorded at one volume every "
                          f"{recorded:g} s, got data.tr = {config.data.tr:g} s; leave data.tr out "
                          f"(the TR is taken from the prepared data) or prepare the data again")
    get_logger().info("data.tr = %g s, the TR of the prepared data %s", recorded, path)
    return with_changes(config, data={"tr": recorded})


def sets_tr(overrides):
    """Whether ``section.key=value`` overrides set ``data.tr``."""
    return any(item.split("=", 1)[0].strip() == "data.tr" for item in overrides or ())


class EpochSampler(gluon.data.Sampler):
    """Shuffled indices that depend only on (seed, epoch), skipping the first ``skip`` of them.

    Resuming a run at (epoch, step) therefore replays exactly the batches an uninterrupted run
    would have seen.
    """

    def __init__(self, length, seed=0, epoch=0, shuffle=True, skip=0):
        self.length, self.seed, self.epoch, self.shuffle, self.skip = length, seed, epoch, shuffle, skip

    def indices(self):
        if not self.shuffle:
            return np.arange(self.length)
        return np.random.RandomState((self.seed * 100003 + self.epoch) % (2 ** 32)).permutation(self.length)

    def __iter__(self):
        return iter(self.indices()[self.skip:].tolist())

    def __len__(self):
        return max(self.length - self.skip, 0)
