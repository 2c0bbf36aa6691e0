"""Reader for vim-2 (Nishimoto et al. 2011, CRCNS "vim-2"), a second public movie-fMRI dataset.

The release holds, in one folder (MATLAB v7.3 = HDF5 files, arrays stored column-major):

* ``Stimuli.mat``: ``st`` (training movie, MATLAB size 128 x 128 x 3 x 108,000, uint8) and ``sv``
  (validation movie, 128 x 128 x 3 x 8,100) at 15 frames per second;
* ``VoxelResponses_subject{1,2,3}.mat``: ``rt`` (voxels x 7,200 training volumes), ``rv`` (voxels x
  540 validation volumes, averaged over repetitions), ``rva`` (the single repetitions; not read
  here, the fixture writer stores it as voxels x volumes x repetitions) and a group
  ``roi/`` of 18 x 64 x 64 volumes (``v1lh v1rh v2lh v2rh v3lh v3rh v3alh ...``) whose non-zero
  voxels form each ROI. Voxel ``v`` of the responses is element ``v`` of a volume in MATLAB's
  linear (column-major) order. TR = 1 s; voxels outside the brain hold NaN.

This module turns that into what brain2pix uses: one frame per TR (the frame shown at the TR's
onset, as ``ffmpeg``'s fps filter keeps the frame nearest to each output time), resized to the
model's frame size, upright (rows = y, columns = x); the training volumes cut into runs of
``Vim2Config.run_volumes`` (the blocks used for leave-one-run-out validation); and ROIs split by
hemisphere (``V1lh``, ``V1rh``, ...) instead of dorsal/ventral. No RF centres are released:
``brain2pix estimate-rf DIR data.dataset=vim2`` estimates them. ``prepare`` and ``estimate-rf``
read a subject through :class:`brain2pix_gluon.io.sources.Vim2Source`.

Large arrays are read with h5py in slices (one run at a time); MATLAB files in general are read
and written by :mod:`brain2pix_gluon.io.matlab`.
"""

import os

import numpy as np

from ..config import DataConfig, Vim2Config
from ..errors import DataError
from . import names
from .matlab import mat_version, write_mat

__all__ = ["ROI_NAMES", "VIM2_KEYS", "Vim2Dataset", "load_vim2_centres", "write_vim2_files"]

# the release's ROI names (roi/v1lh ...) and brain2pix's mask key for each (V1lh ...)
ROI_NAMES, VIM2_KEYS = names.VIM2_ROI_NAMES, names.VIM2_KEYS


def _open(path, what):
    import h5py

    if not os.path.exists(path):
        raise DataError(f"vim-2: {what} {path!s} does not exist; download it from CRCNS "
                        f"(vim-2) into this folder")
    if mat_version(path) != "7.3":
        raise DataError(f"vim-2: {path!s} is a MATLAB v5 file; the release's files are v7.3 (HDF5)")
    return h5py.File(path, "r")


def _dataset(handle, name, path, ndim):
    import h5py

    if name not in handle or not isinstance(handle[name], h5py.Dataset):
        raise DataError(f"vim-2: {path!s} has no array {name!r}; found {sorted(handle.keys())}")
    dset = handle[name]
    if dset.ndim != ndim:
        raise DataError(f"vim-2: {path!s}, {name!r}: expected a {ndim}-D MATLAB array, got "
                        f"MATLAB size {tuple(reversed(dset.shape))}")
    return dset


class Vim2Dataset:
    """One subject of vim-2, read lazily.

    Parameters
    ----------
    folder : str
        Folder with ``Stimuli.mat`` and ``VoxelResponses_subject{N}.mat``.
    subject : int
        1, 2 or 3.
    stimulus_hz : float
        Frame rate of the stimulus movies (15).
    tr : float
        Seconds per volume (1).

    Attributes
    ----------
    n_voxels : int
        Voxels of the responses (73,728 = 18 x 64 x 64 in the release).
    n_volumes : dict
        ``{"train": n, "test": m}`` volumes of ``rt`` and ``rv``.
    """

    def __init__(self, folder, subject=Vim2Config.subject, stimulus_hz=Vim2Config.stimulus_hz,
                 tr=Vim2Config.tr):
        self.folder = os.fspath(folder)
        self.stimuli_path = os.path.join(self.folder, "Stimuli.mat")
        self.responses_path = os.path.join(self.folder, f"VoxelResponses_subject{int(subject)}.mat")
        ratio = stimulus_hz * tr
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
            raise DataError(f"vim2.stimulus_hz x vim2.tr: expected a whole number of frames per "
                            f"volume, got {stimulus_hz} Hz x {tr} s = {ratio}")
        self.frames_per_volume = int(round(ratio))
        self.tr = float(tr)
        with _open(self.responses_path, "voxel responses") as handle:
            train = _dataset(handle, "rt", self.responses_path, 2)
            test = _dataset(handle, "rv", self.responses_path, 2)
            # column-major: MATLAB's voxels x volumes is (volumes, voxels) on disk
            self.n_voxels = train.shape[1]
            if test.shape[1] != self.n_voxels:
                raise DataError(f"vim-2: {self.responses_path!s}: 'rt' has {self.n_voxels} voxels "
                                f"but 'rv' has {test.shape[1]}")
            self.n_volumes = {"train": train.shape[0], "test": test.shape[0]}
            if "roi" not in handle:
                raise DataError(f"vim-2: {self.responses_path!s} has no group 'roi'; found "
                                f"{sorted(handle.keys())}")
            masks = {}
            for name, key in zip(ROI_NAMES, VIM2_KEYS):
                volume = _dataset(handle["roi"], name, self.responses_path + ":roi", 3)[()]
                # C order of the on-disk (reversed) array = MATLAB's linear order of the volume
                mask = np.asarray(volume).reshape(-1) != 0
                if mask.size != self.n_voxels:
                    raise DataError(f"vim-2: {self.responses_path!s}, roi/{name}: volume of "
                                    f"{mask.size} voxels, but the responses have {self.n_voxels}")
                masks[key] = mask
            self.masks = masks
        with _open(self.stimuli_path, "stimuli") as handle:
            self.n_frames = {}
            for split, name in (("train", "st"), ("test", "sv")):
                dset = _dataset(handle, name, self.stimuli_path, 4)
                if dset.shape[1] != 3 or dset.dtype != np.uint8:
                    raise DataError(f"vim-2: {self.stimuli_path!s}, {name!r}: expected MATLAB "
                                    f"size H x W x 3 x N uint8, got {tuple(reversed(dset.shape))} "
                                    f"{dset.dtype}")
                self.n_frames[split] = dset.shape[0]
                needed = self.n_volumes[split] * self.frames_per_volume
                if dset.shape[0] < needed:
                    raise DataError(
                        f"vim-2: {self.stimuli_path!s}, {name!r}: {dset.shape[0]} frames at "
                        f"{stimulus_hz} Hz cover fewer than the {self.n_volumes[split]} volumes "
                        f"of the responses ({needed} frames needed)")

    def frames(self, split, start, stop, size=DataConfig.image_size):
        """One frame per volume (the frame at each volume's onset), resized and upright.

        Parameters
        ----------
        split : {"train", "test"}
        start, stop : int
            Volume range.
        size : int
            Output frame side.

        Returns
        -------
        ndarray, shape (stop - start, size, size, 3), uint8
            Rows are y (top to bottom), columns x.
        """
        import cv2
        import h5py

        name = {"train": "st", "test": "sv"}[split]
        step = self.frames_per_volume
        with h5py.File(self.stimuli_path, "r") as handle:
            # on disk (N, 3, W, H): MATLAB's st(row, column, channel, frame), column-major
            raw = handle[name][start * step:stop * step:step]
        upright = np.ascontiguousarray(raw.transpose(0, 3, 2, 1))
        if upright.shape[1:3] == (size, size):
            return upright
        return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in upright])

    def responses(self, split, start, stop, columns=None):
        """Voxel responses of a volume range.

        Parameters
        ----------
        split : {"train", "test"}
            ``rt`` or ``rv`` (averaged over repetitions).
        start, stop : int
        columns : ndarray of int, optional
            Voxels to read (all by default).

        Returns
        -------
        ndarray, shape (stop - start, n_columns), float32
            NaN where the release has NaN (voxels outside the brain).
        """
        import h5py

        name = {"train": "rt", "test": "rv"}[split]
        with h5py.File(self.responses_path, "r") as handle:
            block = np.asarray(handle[name][start:stop], dtype=np.float32)
        return block if columns is None else block[:, np.asarray(columns)]

    def runs(self, run_volumes):
        """Training runs as volume ranges: consecutive blocks of ``run_volumes`` (last one may be
        shorter).

        Returns
        -------
        list of (int, int)
        """
        n = self.n_volumes["train"]
        return [(s, min(s + run_volumes, n)) for s in range(0, n, run_volumes)]


def load_vim2_centres(folder, masks):
    """RF centres written by ``estimate-rf`` for a vim-2 subject, one value per ROI voxel.

    Parameters
    ----------
    folder : str
        Folder with ``col_centers_112px.mat`` and ``row_centers_112px.mat`` (keys ``V1lh`` ...).
    masks : dict of str -> ndarray of bool, shape (n_voxels,)
        :attr:`Vim2Dataset.masks`.

    Returns
    -------
    cols, rows : dict of str -> ndarray, shape (n_roi_voxels,)
        x and y in [-0.5, 0.5), NaN for voxels without an estimate.
    """
    from .matlab import read_mat

    out = []
    for name in names.CENTRE_FILES:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            raise DataError(f"vim-2: {path!s} does not exist; run `brain2pix estimate-rf "
                            f"{folder} data.dataset=vim2` first")
        data = read_mat(path)
        values = {}
        for key in VIM2_KEYS:
            if key not in data:
                raise DataError(f"vim-2: {path!s}: key {key!r} missing; found {sorted(data)}")
            values[key] = np.asarray(data[key], float).reshape(-1)
            if values[key].size != int(masks[key].sum()):
                raise DataError(f"vim-2: {path!s}, key {key!r}: expected {int(masks[key].sum())} "
                                f"values (voxels of the ROI), got {values[key].size}")
        out.append(values)
    return out[0], out[1]


def write_vim2_files(folder, subject, train_frames, test_frames, train_responses,
                     test_responses, test_repetitions, rois):
    """Write arrays in the vim-2 release's layout (for tests and for trying the pipeline).

    Parameters
    ----------
    folder : str
    subject : int
    train_frames, test_frames : ndarray, shape (n_frames, H, W, 3), uint8
        Upright frames at the stimulus rate.
    train_responses, test_responses : ndarray, shape (n_volumes, n_voxels)
    test_repetitions : ndarray, shape (n_repetitions, n_volumes_test, n_voxels)
    rois : dict of str -> ndarray of bool
        For names in :data:`ROI_NAMES`, volumes in MATLAB orientation (e.g. 18 x 64 x 64) whose
        MATLAB linear order is the voxel order of the responses.

    Returns
    -------
    (str, str)
        Paths of ``Stimuli.mat`` and ``VoxelResponses_subject{N}.mat``.
    """
    import h5py

    os.makedirs(folder, exist_ok=True)
    stimuli = os.path.join(folder, "Stimuli.mat")
    responses = os.path.join(folder, f"VoxelResponses_subject{int(subject)}.mat")
    # MATLAB sizes: H x W x 3 x N frames, voxels x volumes, voxels x volumes x repetitions
    write_mat(stimuli, {"st": np.asarray(train_frames, np.uint8).transpose(1, 2, 3, 0),
                        "sv": np.asarray(test_frames, np.uint8).transpose(1, 2, 3, 0)},
              version="7.3")
    write_mat(responses, {"rt": np.asarray(train_responses, np.float32).T,
                          "rv": np.asarray(test_responses, np.float32).T,
                          "rva": np.asarray(test_repetitions, np.float32).transpose(2, 1, 0)},
              version="7.3")
    # the roi struct: a group of volumes (MATLAB structs are HDF5 groups in v7.3)
    with h5py.File(responses, "a") as handle:
        group = handle.create_group("roi")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        for name, volume in rois.items():
            dset = group.create_dataset(name, data=np.ascontiguousarray(
                np.asarray(volume, np.float32).T))
            dset.attrs["MATLAB_class"] = np.bytes_("single")
    return stimuli, responses
