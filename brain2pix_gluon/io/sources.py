"""Dataset sources: one class per dataset layout, read by ``prepare`` and ``estimate-rf`` alike.

A source gives, whatever the layout:

* ``masks``: the ROI masks (mask key -> bool over the voxels that :meth:`read_signals` returns),
  ``parts`` (ROI -> its mask keys, in the order their voxels are stacked) and ``part_kind``
  (``"dorsal_ventral"`` or ``"hemisphere"``);
* :meth:`centres`: the RF centres oriented by ``data.rf_swap_axes`` / ``data.rf_flip_y``, read on
  first use (``estimate-rf`` writes them, so they need not exist before);
* :meth:`runs`, :meth:`read_signals` and :meth:`load_frames`: the runs of a split, their voxel
  signals and their frames at one per TR;
* ``tr``: seconds per volume of the recording;
* :meth:`checksums`: sha256 of every file a split is made from.

Layouts: :class:`RawSource` (``data.dataset=raw``, :mod:`brain2pix_gluon.io.raw`) and
:class:`Vim2Source` (``data.dataset=vim2``, :mod:`brain2pix_gluon.io.vim2`); :func:`open_source`
picks one by ``data.dataset``.
"""

import os

import numpy as np

from ..errors import DataError
from . import names

__all__ = ["DatasetSource", "RawSource", "Vim2Source", "open_source", "orient_centres", "LAYOUTS"]


def orient_centres(cols, rows, swap_axes=False, flip_y=False):
    """Apply ``data.rf_swap_axes`` / ``data.rf_flip_y`` to the centres read from the files.

    Parameters
    ----------
    cols, rows : dict of str -> ndarray
        Centres as stored in the col and row files, per mask key.

    Returns
    -------
    xs, ys : dict of str -> ndarray
        Horizontal and vertical centres per mask key (NaN kept).
    """
    xs, ys = (rows, cols) if swap_axes else (cols, rows)
    if flip_y:
        ys = {k: -v for k, v in ys.items()}
    return dict(xs), dict(ys)


class DatasetSource:
    """What both layouts give (see the module docstring); subclasses fill in the reading.

    Attributes
    ----------
    config : Config
    masks : dict of str -> ndarray of bool, shape (n_brain_voxels,)
    parts : dict of str -> tuple of str
    keys : tuple of str
        Every mask key, ROI by ROI and part by part.
    part_kind : {"dorsal_ventral", "hemisphere"}
    tr : float
    n_brain_voxels : int
        Columns of the signals :meth:`read_signals` returns.
    """

    parts = {}
    part_kind = ""

    def __init__(self, config):
        self.config = config
        self.keys = tuple(k for roi in names.ROIS for k in self.parts[roi])
        self._centres = None

    @property
    def n_brain_voxels(self):
        return next(iter(self.masks.values())).shape[0]

    def mask_columns(self, key):
        """Columns of :meth:`read_signals`'s signals that belong to a mask key, shape (n,)."""
        return np.flatnonzero(self.masks[key])

    def voxel_index(self, key):
        """Voxel numbers of a mask key in the dataset's own numbering (recorded by estimate-rf)."""
        return self.mask_columns(key)

    def centres(self):
        """x (horizontal) and y (vertical) centre of every mask voxel, NaN = no estimate.

        Returns
        -------
        xs, ys : dict of str -> ndarray, shape (n_mask_voxels,)
        """
        if self._centres is None:
            cols, rows = self._read_centres()
            data = self.config.data
            self._centres = orient_centres(cols, rows, data.rf_swap_axes, data.rf_flip_y)
        return self._centres

    @property
    def axis_sources(self):
        """(file of x, file of y): named in messages about the orientation."""
        paths = self.centre_paths
        x, y = paths[0], paths[-1]
        return (y, x) if self.config.data.rf_swap_axes else (x, y)

    def read_signals(self, run):
        """Each repetition's signals of a run (test clips may have several).

        Yields
        ------
        (str, ndarray of shape (n_volumes, n_brain_voxels), float32)
            Where the signals come from, and the signals (NaN outside the ROIs is kept).
        """
        for where, signals in self._read_signals(run):
            if signals.ndim != 2 or signals.shape[1] != self.n_brain_voxels:
                raise DataError(f"run {where!s}: expected {self.n_brain_voxels} voxels (the ROI "
                                f"masks' size), got signals of shape {signals.shape}")
            yield where, signals

    # what each layout reads
    def runs(self, split):
        """Runs of a split: list of dicts with at least ``name`` and ``signals`` (where from)."""
        raise NotImplementedError

    def load_frames(self, run):
        """The run's frames at one per TR: ndarray (n_frames, S, S, 3) uint8, upright."""
        raise NotImplementedError

    def checksums(self, split):
        """sha256 of every file a split is made from: dict name -> hex digest."""
        raise NotImplementedError

    def _read_signals(self, run):
        raise NotImplementedError

    def _read_centres(self):
        raise NotImplementedError


def _first_existing(folder, choices):
    for name in choices:
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return os.path.join(folder, choices[0])


class RawSource(DatasetSource):
    """A dataset folder in the package's raw layout (:mod:`brain2pix_gluon.io.raw`).

    Parameters
    ----------
    raw_dir : str
    config : Config
        ``data``: TR, frame size and how videos are decoded; the centres' orientation.
    """

    parts = names.RAW_PARTS
    part_kind = "dorsal_ventral"

    def __init__(self, raw_dir, config):
        from .raw import find_first, load_roi_masks

        super().__init__(config)
        self.folder = os.fspath(raw_dir)
        if not os.path.isdir(self.folder):
            raise DataError(f"raw dataset {self.folder!s} is not a directory")
        self.tr = config.data.tr
        self.mask_path = find_first(self.folder, names.MASK_FILES, "ROI masks")
        self.masks = load_roi_masks(self.mask_path)
        table = os.path.join(self.folder, names.CENTRE_TABLE)
        if os.path.exists(table):
            self.centre_paths = (table,)
        else:   # the files found, or the names estimate-rf writes
            self.centre_paths = tuple(_first_existing(self.folder, choices) for choices in
                                      (names.COL_CENTRE_CHOICES, names.ROW_CENTRE_CHOICES))

    def _read_centres(self):
        from .raw import find_first, load_rf_centres

        if len(self.centre_paths) == 1:
            return load_rf_centres(self.centre_paths[0], masks=self.masks,
                                   mask_source=self.mask_path)
        col = find_first(self.folder, names.COL_CENTRE_CHOICES, "column RF centres")
        row = find_first(self.folder, names.ROW_CENTRE_CHOICES, "row RF centres")
        return load_rf_centres(col, row, masks=self.masks, mask_source=self.mask_path)

    def runs(self, split):
        """Runs of a split (see :func:`brain2pix_gluon.io.raw.discover_runs`)."""
        from .raw import discover_runs

        return discover_runs(self.folder, split)

    def checksums(self, split):
        """sha256 of every file that a split is made from, by path relative to the folder."""
        from .raw import file_checksum

        paths = [self.mask_path, *self.centre_paths]
        for run in self.runs(split):
            paths.extend(run["signals"])
            paths.append(run["video"])
        out = {}
        for path in paths:
            if os.path.isdir(path):
                for name in sorted(os.listdir(path)):
                    full = os.path.join(path, name)
                    out[os.path.relpath(full, self.folder)] = file_checksum(full)
            else:
                out[os.path.relpath(path, self.folder)] = file_checksum(path)
        return out

    def _read_signals(self, run):
        from .raw import load_run

        for path in run["signals"]:
            yield path, load_run(path, finite=False)

    def load_frames(self, run):
        """The run's video at one frame per TR: (n_frames, S, S, 3) uint8."""
        from .video import read_video

        data = self.config.data
        return read_video(run["video"], data.image_size, data.tr, data.video_backend,
                          data.video_aspect, data.reencode)


class Vim2Source(DatasetSource):
    """A vim-2 subject (Nishimoto et al. 2011; :mod:`brain2pix_gluon.io.vim2`).

    ROIs are split by hemisphere (``V1 = V1lh + V1rh``); centres come from ``estimate-rf``
    (``col_centers_112px.mat`` / ``row_centers_112px.mat`` in the folder); training runs are
    ``rt`` cut into blocks of ``vim2.run_volumes`` volumes, and the test set is the validation set
    (``rv``, averaged over repetitions) with ``sv``; one stimulus frame per TR (the frame at the
    TR's onset). Only the ROI voxels are read (the release's other voxels hold NaN): ``masks``
    and the signals cover the union of the ROIs. The TR is the release's (``vim2.tr``, 1 s);
    ``data.tr`` is not used.

    Parameters
    ----------
    folder : str
    config : Config
        ``vim2`` (subject, rates, run length), ``data.image_size`` and the centres' orientation.
    """

    parts = names.VIM2_PARTS
    part_kind = "hemisphere"

    def __init__(self, folder, config):
        from .vim2 import Vim2Dataset

        super().__init__(config)
        self.folder = os.fspath(folder)
        if not os.path.isdir(self.folder):
            raise DataError(f"vim-2 folder {self.folder!s} is not a directory")
        self.dataset = Vim2Dataset(self.folder, config.vim2.subject, config.vim2.stimulus_hz,
                                   config.vim2.tr)
        self.tr = self.dataset.tr
        # the "brain" is the union of the ROI voxels: only these columns are ever read
        union = np.zeros(self.dataset.n_voxels, bool)
        for mask in self.dataset.masks.values():
            union |= mask
        self.columns = np.flatnonzero(union)
        self.masks = {k: m[self.columns] for k, m in self.dataset.masks.items()}
        self.centre_paths = tuple(os.path.join(self.folder, n) for n in names.CENTRE_FILES)
        self._checksums = None

    def voxel_index(self, key):
        """Voxel numbers in the release's responses (MATLAB linear order of the volume)."""
        return self.columns[self.mask_columns(key)]

    def _read_centres(self):
        from .vim2 import load_vim2_centres

        return load_vim2_centres(self.folder, self.dataset.masks)

    def runs(self, split):
        """Training: blocks of ``vim2.run_volumes`` of ``rt``; test: the whole validation set."""
        name = os.path.basename(self.dataset.responses_path)
        if split == "train":
            blocks = [(f"run_{i:03d}", start, stop) for i, (start, stop) in
                      enumerate(self.dataset.runs(self.config.vim2.run_volumes), start=1)]
        else:
            blocks = [("validation", 0, self.dataset.n_volumes["test"])]
        array = {"train": ("rt", "st"), "test": ("rv", "sv")}[split]
        return [{"name": run, "split": split, "start": start, "stop": stop,
                 "signals": [f"{name}:{array[0]}[{start}:{stop}]"],
                 "video": f"Stimuli.mat:{array[1]} (volumes {start}:{stop})"}
                for run, start, stop in blocks]

    def checksums(self, split):
        """sha256 of the release's two files and the centre files (computed once)."""
        from .raw import file_checksum

        if self._checksums is None:
            paths = (self.dataset.stimuli_path, self.dataset.responses_path, *self.centre_paths)
            self._checksums = {os.path.basename(p): file_checksum(p) for p in paths}
        return dict(self._checksums)

    def _read_signals(self, run):
        yield run["signals"][0], self.dataset.responses(run["split"], run["start"], run["stop"],
                                                        self.columns)

    def load_frames(self, run):
        """Frames of a run at one per TR: (n_frames, S, S, 3) uint8."""
        return self.dataset.frames(run["split"], run["start"], run["stop"],
                                   self.config.data.image_size)


LAYOUTS = {"raw": RawSource, "vim2": Vim2Source}


def open_source(folder, config):
    """The dataset in ``folder``, read as ``data.dataset`` says (:data:`LAYOUTS`)."""
    return LAYOUTS[config.data.dataset](folder, config)
