"""A simulated Brain2Pix dataset, shaped like the real release (``brain2pix simulate``).

The simulator exercises the real readers and ``prepare`` unchanged, on files laid out and encoded
as the Doctor Who release's are:

* **Stimuli**: 16:9 WebM videos at their native 25 fps (``simulation.video_fps``,
  ``simulation.video_size``), never one frame per TR: ``prepare`` resamples them as the authors
  did. They film the embedded world (:mod:`brain2pix_gluon.data.world`): a fixed cast of
  characters and sets, built from images that ship with scikit-image and scikit-learn, in
  scenes of shots with pans, zooms and cuts. The test clips are new scenes of the same world,
  drawn from a random stream of their own.
* **Runs keep scanning** ``simulation.post_stimulus_s`` (10-20 s) after their video ends, as real
  runs do; the number of samples therefore comes from the video.
* **Voxels**: V1, V2 and V3, each with a dorsal part in the lower visual field (y > 0) and a
  ventral part in the upper field (y < 0), with isotropic Gaussian pRFs on the fisheye-warped
  frame whose size grows with eccentricity and from V1 to V3. A voxel's neural drive is a per-ROI
  mixture of compressed contrast energy, colour opponency and luminance of the frame shown at
  each TR (:mod:`brain2pix_gluon.data.cortex`; ``simulation.drive=cortex``, the default) or its
  pRF-weighted luminance alone (``simulation.drive=luminance``); a uniform grey follows the
  video. The BOLD signal is that drive convolved with a canonical double-gamma HRF, times a gain,
  plus a baseline and white noise. Non-visual voxels carry noise only.
* **Files**: ``roimask.mat``, ``col_centers_112px.mat`` (x) and ``row_centers_112px.mat`` (y) as
  MATLAB v5 or v7.3 (``simulation.mat_version``); centres on the release's 112-px grid with a
  Gaussian estimation error and a few NaNs (no estimate). Training runs ``train/run_NNN.npy``
  (time x voxels), test clips as repetitions ``test/clip_NN_rep_MM.npy`` with independent noise,
  each z-scored, so that averaging on read raises the SNR.
* **Truth** (``truth.npz``), for validating what is estimated from the data: per mask key
  (``V1d`` ... ``V3v``, voxels in mask order) the true pRF centre ``<key>_x`` (horizontal,
  -0.5 left ... +0.5 right) and ``<key>_y`` (vertical, -0.5 top ... +0.5 bottom), both in
  [-0.5, 0.5) units of the warped frame, and ``<key>_sigma`` (same units); ``gains`` (visual
  voxels in mask order), ``hrf`` (sampled at the TR), and per run ``run_names``, ``run_frames``
  (frames at one per TR that the video decodes to) and ``run_volumes``. ``truth_signals.npz``
  holds every run's noise-free BOLD (volumes x visual voxels in mask order).
* **Labels** (``labels.npz``, :func:`read_labels`): for every frame shown at a TR onset, the
  set and each character's centre, area and visible fraction in the warped target.
"""

import os

import numpy as np

from ..config import DataConfig, SimulationConfig
from ..errors import DataError
from ..io.matlab import write_mat
from ..io.names import COL_CENTRES, MASK_FILES, MASK_KEYS, ROIS, ROW_CENTRES
from ..io.video import VideoWriter, ffmpeg_executable, fps_filter_selection, read_video
from ..preprocessing.hrf import double_gamma_hrf
from ..preprocessing.retina import fisheye_warp
from ..utils import get_logger, progress, remove_quietly
from .cortex import VoxelModel, drive_table, prf_weights
from .world import CHARACTER_NAMES, LABEL_FIELDS, SET_NAMES, SHOT_KINDS, Layout, build_world, \
    frame_labels, render_world

__all__ = ["simulate_dataset", "double_gamma_hrf", "make_voxels", "read_labels", "labels_for", "GRID",
           "SIMULATOR_VERSION", "LABELS_FILE"]

def make_voxels(n_voxels, rf_sigma, rng):
    """True pRFs of every ROI part.

    Parameters
    ----------
    n_voxels : sequence of 3 int
        Voxels of V1, V2 and V3 (dorsal and ventral together; half each, the ventral part
        taking an odd one).
    rf_sigma : sequence of 3 float
        pRF size at the fovea of each ROI, in image units; it grows 5-fold to the edge.
    rng : numpy.random.Generator

    Returns
    -------
    dict of str -> dict
        For keys ``V1d`` ... ``V3v``: ``x`` (horizontal, -0.5 left ... +0.5 right), ``y``
        (vertical, -0.5 top ... +0.5 bottom) centres in [-0.5, 0.5) of the warped frame, and
        ``sigma`` (same units). Dorsal parts cover the lower visual field (y > 0), ventral parts
        the upper (y < 0).
    """
    voxels = {}
    for roi, n_roi, sigma0 in zip(ROIS, n_voxels, rf_sigma):
        for part, n_part in (("d", n_roi // 2), ("v", n_roi - n_roi // 2)):
            ecc = 0.47 * np.sqrt(rng.uniform(0.0, 1.0, n_part))
            theta = rng.uniform(0.02, np.pi - 0.02, n_part) * (1 if part == "d" else -1)
            voxels[roi + part] = {"x": np.clip(ecc * np.cos(theta), -0.5, 0.499),
                                  "y": np.clip(ecc * np.sin(theta), -0.5, 0.499),
                                  "sigma": sigma0 * (1.0 + 4.0 * ecc)}
    return voxels


GRID = 112  # the release's RF centres were estimated on a 112-px grid

# bumped whenever the simulator writes different data for the same settings (cache key)
SIMULATOR_VERSION = 4


def _on_grid(values):
    """Centres as the release stores them: cells of the 112-px grid, normalised to [-0.5, 0.5)."""
    return np.clip(np.round((values + 0.5) * GRID), 0, GRID - 1) / GRID - 0.5


def _place_voxels(voxels, n_nonvisual, rng):
    """Scatter the visual voxels among the brain's flattened voxels.

    Returns
    -------
    masks : dict of str -> ndarray of bool, shape (n_brain,)
        Per ROI part, as ``roimask.mat`` holds them.
    brain_index : ndarray of int, shape (n_visual,)
        Brain position of every visual voxel, in mask order (V1d, V1v, ..., V3v).
    """
    n_visual = sum(len(voxels[k]["x"]) for k in MASK_KEYS)
    n_brain = n_visual + n_nonvisual
    order = rng.permutation(n_brain)  # where each voxel sits in the flattened brain
    masks, positions, start = {}, [], 0
    for key in MASK_KEYS:
        n = len(voxels[key]["x"])
        pos = np.sort(order[start:start + n])
        start += n
        masks[key] = np.zeros(n_brain, bool)
        masks[key][pos] = True
        positions.append(pos)
    return masks, np.concatenate(positions)


def _write_roi_files(out_dir, voxels, masks, sim, rng):
    """``roimask.mat`` and the centre files as the release writes them: col = x, row = y, on the
    112-px grid, with an estimation error and a few voxels without an estimate (NaN)."""
    cols_disk, rows_disk = {}, {}
    for key in MASK_KEYS:
        n = len(voxels[key]["x"])
        err = rng.normal(0.0, sim.centre_error_sd, (2, n))
        x = _on_grid(voxels[key]["x"] + err[0])
        y = _on_grid(voxels[key]["y"] + err[1])
        missing = rng.random(n) < sim.nan_fraction
        x[missing] = np.nan
        y[missing] = np.nan
        cols_disk[key], rows_disk[key] = x[:, None], y[:, None]
    write_mat(os.path.join(out_dir, MASK_FILES[0]), {k: masks[k][:, None] for k in MASK_KEYS},
              sim.mat_version)
    write_mat(os.path.join(out_dir, COL_CENTRES), cols_disk, sim.mat_version)
    write_mat(os.path.join(out_dir, ROW_CENTRES), rows_disk, sim.mat_version)


class _Scanner:
    """The simulated participant in the scanner: frames -> noise-free BOLD -> noisy brain volumes.

    A voxel's neural drive comes from :class:`~brain2pix_gluon.data.cortex.VoxelModel`
    (``simulation.drive=cortex``: compressed local contrast energy, colour opponency, a
    little luminance, mixed per ROI) or, with ``simulation.drive=luminance``, from its
    pRF-weighted luminance alone (a linear model). The BOLD signal is the
    drive convolved with the HRF, times the voxel's gain. After the video the screen is a uniform
    grey at the video's mean level while the brain keeps being scanned.
    """

    def __init__(self, voxels, brain_index, n_brain, sim, data, rng):
        self.size, self.max_ratio, self.noise_sd = data.image_size, data.max_ratio, sim.noise_sd
        self.weights = np.concatenate([prf_weights(voxels[k]["x"], voxels[k]["y"],
                                                   voxels[k]["sigma"], self.size)
                                       for k in MASK_KEYS])
        self.brain_index, self.n_brain = brain_index, n_brain
        self.hrf = double_gamma_hrf(data.tr)
        self.gains = rng.uniform(0.5, 1.5, len(brain_index)).astype(np.float32)
        self.baseline = rng.uniform(50, 150, n_brain).astype(np.float32)
        self.drive_model = sim.drive
        roi_index = np.concatenate([np.full(len(voxels[k]["x"]), ROIS.index(k[:2]))
                                    for k in MASK_KEYS])
        # the voxels' hue preferences come from their own stream: the drive model changes no other
        # draw (run lengths, noise) of the same seed
        self.cortex = VoxelModel(self.weights, roi_index, drive_table(sim), sim.css_exponent,
                                 np.random.default_rng([sim.seed, 3]))

    def bold(self, frames_uint8, n_volumes):
        """Noise-free BOLD, shape (n_volumes, n_visual), of frames shown one per TR."""
        warped = fisheye_warp(frames_uint8.astype(np.float32) / 255.0, self.max_ratio)
        if self.drive_model == "luminance":
            # one product over every volume, the mean grey after the video included
            shown = warped.mean(axis=-1).reshape(len(warped), -1)
            luminance = np.full((n_volumes, self.size * self.size), shown.mean(), np.float32)
            luminance[:len(warped)] = shown
            drive = luminance @ self.weights.T
        else:
            grey = np.full((1,) + frames_uint8.shape[1:], frames_uint8.mean() / 255.0, np.float32)
            drive = np.empty((n_volumes, len(self.brain_index)), np.float32)
            drive[:len(warped)] = self.cortex.drive(warped)
            drive[len(warped):] = self.cortex.drive(fisheye_warp(grey, self.max_ratio))
        drive -= drive.mean(axis=0)
        signal = np.stack([np.convolve(d, self.hrf)[: len(d)] for d in drive.T], axis=1)
        return (signal * self.gains).astype(np.float32)

    def scan(self, signal, rng):
        """Brain volumes, shape (n_volumes, n_brain): white noise everywhere, plus the signal in
        the visual voxels, plus each voxel's baseline."""
        scale = signal.std(axis=0).mean() + 1e-8
        out = rng.normal(0.0, self.noise_sd * scale, (signal.shape[0], self.n_brain))
        out = out.astype(np.float32)
        out[:, self.brain_index] += signal
        return out + self.baseline


def _simulate_run(out_dir, split, name, n_volumes, world, scanner, sim, data, ext, rng,
                  stimulus_rng):
    """Write one run's video and voxels (a test clip's repetitions).

    Returns
    -------
    signal : ndarray, shape (n_volumes, n_visual)
        Noise-free BOLD.
    labels : dict of str -> ndarray
        The layout of the frames shown at the TR onsets (:func:`read_labels`' per-run keys).
    """
    tail = int(round(rng.uniform(*sim.post_stimulus_s) / data.tr))
    n_tr_frames = n_volumes - max(tail, data.shift + data.n_trs)
    if n_tr_frames < 1:
        raise DataError(f"simulation: {split} runs of {n_volumes} volumes leave no room for a "
                        f"video before {tail} post-stimulus volumes; raise "
                        f"simulation.volumes_per_{'run' if split == 'train' else 'clip'}")
    video_path = os.path.join(out_dir, split, f"{name}.{ext}")
    n_native = int(round(n_tr_frames * data.tr * sim.video_fps))
    width, height = sim.video_size
    layouts = []
    with VideoWriter(video_path, width, height, sim.video_fps) as writer:
        for frames, layout in render_world(world, n_native, width, height, sim.video_fps,
                                           stimulus_rng):
            writer.write(frames)
            layouts.append(layout)
    decoded = read_video(video_path, data.image_size, data.tr)
    # the frames shown at the TR onsets, as the reader picks them from the native rate
    shown = fps_filter_selection(np.arange(n_native) / sim.video_fps, n_native / sim.video_fps,
                                 data.tr)[:len(decoded)]
    layout = Layout.concatenate(layouts).take(shown)
    set_index, characters = frame_labels(world, layout, sim.video_size, data.image_size,
                                         data.max_ratio, data.fisheye)
    labels = {"set": set_index, "characters": characters, "shot": layout.shot,
              "kind": layout.kind}
    signal = scanner.bold(decoded, n_volumes)
    if split == "train":
        np.save(os.path.join(out_dir, split, f"{name}.npy"), scanner.scan(signal, rng))
    else:   # repetitions, each z-scored as preprocessed data would be
        for rep in range(sim.n_repetitions):
            run = scanner.scan(signal, rng)
            run = (run - run.mean(0)) / run.std(0)
            np.save(os.path.join(out_dir, split, f"{name}_rep_{rep + 1:02d}.npy"),
                    run.astype(np.float32))
    return signal, labels


LABELS_FILE = "labels.npz"


def simulate_dataset(out_dir, sim=None, data=None, show_progress=True):
    """Write a simulated raw dataset to ``out_dir`` (see the module docstring).

    Steps: true pRFs, voxel placement and the ROI/centre files; then every training run and test
    clip (video, per-frame labels, BOLD, noisy volumes); then the truth files. Everything is
    written into ``<out_dir>.partial`` and renamed to ``out_dir`` only when complete, so a
    failed or killed simulation never leaves a folder that looks like a dataset.

    Parameters
    ----------
    out_dir : str
        Must not exist, or be an empty folder.
    sim : SimulationConfig, optional
    data : DataConfig, optional
        ``image_size``, ``tr``, ``max_ratio``, ``fisheye``, ``shift`` and ``n_trs`` are used.
    show_progress : bool

    Returns
    -------
    str
        ``out_dir``.

    Raises
    ------
    DataError
        When ``out_dir`` holds files already.
    """
    from ..utils import replacing

    out_dir = os.fspath(out_dir)
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise DataError(f"simulate: the output folder {out_dir} is not empty; choose another "
                        f"--out or remove it (nothing was written)")
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise DataError(f"simulate: {out_dir} is a file; expected a folder to create")
    with replacing(out_dir) as work:
        remove_quietly(work)            # what a killed simulation left behind
        _simulate_into(work, sim or SimulationConfig(), data or DataConfig(), show_progress)
    get_logger().info("simulated dataset written to %s", out_dir)
    return out_dir


def _simulate_into(out_dir, sim, data, show_progress):
    rng = np.random.default_rng(sim.seed)
    for split in ("train", "test"):
        os.makedirs(os.path.join(out_dir, split), exist_ok=True)
    ext = sim.video_ext
    if ext == "webm" and ffmpeg_executable() is None:
        get_logger().warning("simulation: no ffmpeg (pip install imageio-ffmpeg): videos written "
                             "as MP4 with OpenCV instead of WebM")
        ext = "mp4"

    voxels = make_voxels(sim.n_voxels, sim.rf_sigma, rng)
    masks, brain_index = _place_voxels(voxels, sim.n_nonvisual_voxels, rng)
    n_brain = len(next(iter(masks.values())))
    _write_roi_files(out_dir, voxels, masks, sim, rng)
    scanner = _Scanner(voxels, brain_index, n_brain, sim, data, rng)
    world = build_world()
    # the films of the training runs and of the test clips come from streams of their own: the
    # test clips are new scenes of the same world
    stimulus_rngs = {"train": np.random.default_rng([sim.seed, 1]),
                     "test": np.random.default_rng([sim.seed, 2])}

    jobs = [("train", f"run_{i + 1:03d}", sim.volumes_per_run) for i in range(sim.n_train_runs)]
    jobs += [("test", f"clip_{i + 1:02d}", sim.volumes_per_clip) for i in range(sim.n_test_clips)]
    clean, labels = {}, {}
    for split, name, n_volumes in progress(jobs, desc="simulate", enabled=show_progress, unit="run"):
        clean[name], labels[name] = _simulate_run(out_dir, split, name, n_volumes, world, scanner,
                                                  sim, data, ext, rng, stimulus_rngs[split])
    np.savez(os.path.join(out_dir, "truth.npz"),
             **{f"{k}_x": voxels[k]["x"] for k in MASK_KEYS},
             **{f"{k}_y": voxels[k]["y"] for k in MASK_KEYS},
             **{f"{k}_sigma": voxels[k]["sigma"] for k in MASK_KEYS},
             gains=scanner.gains, hrf=scanner.hrf, colour_polarity=scanner.cortex.polarity,
             drive_mix=scanner.cortex.mix, css_exponent=scanner.cortex.exponent,
             run_names=np.array([j[1] for j in jobs]),
             run_frames=np.array([len(labels[j[1]]["set"]) for j in jobs]),
             run_volumes=np.array([j[2] for j in jobs]))
    # noise-free BOLD of every run, columns in mask order (V1d, V1v, ..., V3v): the oracle
    np.savez(os.path.join(out_dir, "truth_signals.npz"), **clean)
    np.savez(os.path.join(out_dir, LABELS_FILE), set_names=np.array(SET_NAMES),
             character_names=np.array(CHARACTER_NAMES), label_fields=np.array(LABEL_FIELDS),
             shot_kinds=np.array(SHOT_KINDS),
             **{f"{name}__{key}": value for name, run in labels.items()
                for key, value in run.items()})
    get_logger().info("simulated %d brain voxels (%d visual)", n_brain, len(brain_index))


def read_labels(raw_dir):
    """The embedded world's per-frame labels of a simulated dataset (``labels.npz``).

    Parameters
    ----------
    raw_dir : str
        A folder written by :func:`simulate_dataset`.

    Returns
    -------
    dict
        ``set_names``, ``character_names``, ``label_fields``, ``shot_kinds`` (lists of str) and
        ``runs``: run or clip name -> ``{"set": (n_frames,) int, "characters": (n_frames,
        n_characters, 4) float32 (:data:`~.world.LABEL_FIELDS`), "shot": (n_frames,) int,
        "kind": (n_frames,) int}``, one row per frame shown at a TR onset (the prepared data's
        ``frame`` index).

    Raises
    ------
    DataError
        When the file is missing (a dataset that is not simulated, or from a simulator before
        the world) or damaged.
    """
    path = os.path.join(os.fspath(raw_dir), LABELS_FILE)
    if not os.path.exists(path):
        raise DataError(f"{path}: no per-frame labels; they are written by `brain2pix simulate` "
                        f"(simulator version {SIMULATOR_VERSION} and later), real data have none")
    try:
        with np.load(path) as f:
            out = {k: [str(v) for v in f[k]] for k in ("set_names", "character_names",
                                                        "label_fields", "shot_kinds")}
            runs = {}
            for key in f.files:
                if "__" in key:
                    name, field = key.rsplit("__", 1)
                    runs.setdefault(name, {})[field] = f[key]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: damaged labels file ({exc}); simulate the dataset again") \
            from None
    out["runs"] = runs
    return out


def labels_for(labels, run_names, samples):
    """The labels of prepared samples or reconstructions, frame by frame.

    Parameters
    ----------
    labels : dict
        :func:`read_labels`.
    run_names : sequence of str
        The run (clip) names the samples' ``run`` column indexes.
    samples : ndarray of int, shape (n, 5)
        Prepared samples (``/samples`` of a split or a reconstruction file).

    Returns
    -------
    sets : ndarray of int, shape (n,)
    characters : ndarray, shape (n, n_characters, 4), float32

    Raises
    ------
    DataError
        When a run or a frame has no label (labels of another dataset).
    """
    from ..io.prepared import SAMPLE

    samples = np.asarray(samples)
    sets = np.empty(len(samples), np.int64)
    n_chars = len(labels["character_names"])
    characters = np.empty((len(samples), n_chars, len(labels["label_fields"])), np.float32)
    for k, (run, frame) in enumerate(zip(samples[:, SAMPLE.run], samples[:, SAMPLE.frame])):
        name = run_names[run]
        if name not in labels["runs"] or frame >= len(labels["runs"][name]["set"]):
            raise DataError(f"labels: no label for frame {frame} of run {name!r}; these labels "
                            f"belong to another dataset (runs {sorted(labels['runs'])[:4]} ...)")
        sets[k] = labels["runs"][name]["set"][frame]
        characters[k] = labels["runs"][name]["characters"][frame]
    return sets, characters
