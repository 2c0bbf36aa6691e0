"""A simulated Brain2Pix dataset, shaped like the real release (``brain2pix simulate``).

The simulator exercises the real readers and ``prepare`` unchanged, on files laid out and encoded
as the Doctor Who release's are:

* **Stimuli**: 16:9 WebM videos at their native 25 fps (``simulation.video_fps``,
  ``simulation.video_size``), never one frame per TR: ``prepare`` resamples them as the authors
  did. A video is a sequence of shots separated by cuts: pans and zooms over natural images that
  ship inside installed packages (scikit-image, scikit-learn), moving shapes over noise textures,
  and drifting gratings. The images are split once between training and test, and procedural
  scenes are drawn anew for every shot, so the test clips show nothing that training runs show.
* **Runs keep scanning** ``simulation.post_stimulus_s`` (10-20 s) after their video ends, as real
  runs do; the number of samples therefore comes from the video.
* **Voxels**: V1, V2 and V3, each with a dorsal part in the lower visual field (y > 0) and a
  ventral part in the upper field (y < 0), with isotropic Gaussian pRFs on the fisheye-warped
  frame whose size grows with eccentricity and from V1 to V3. A voxel's neural drive is its
  pRF-weighted luminance of the frame shown at each TR (``simulation.drive=luminance``, the
  default) or, with ``simulation.drive=cortex``, a per-ROI mixture of compressed contrast energy,
  colour opponency and luminance (:mod:`brain2pix_gluon.data.cortex`); a uniform grey follows the
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
"""

import os

import numpy as np

from ..config import DataConfig, SimulationConfig
from ..errors import DataError
from ..io.matlab import write_mat
from ..io.video import VideoWriter, ffmpeg_executable, read_video
from ..preprocessing.hrf import double_gamma_hrf
from ..preprocessing.retina import fisheye_warp
from ..utils import get_logger, progress
from .cortex import ROIS, VoxelModel, drive_table

__all__ = ["simulate_dataset", "stimulus_images", "split_stimulus_images", "double_gamma_hrf",
           "make_voxels", "render_shots", "GRID", "SIMULATOR_VERSION"]

_SKIMAGE_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry",
                   "hubble_deep_field", "colorwheel", "camera", "coins", "horse", "moon", "grass",
                   "gravel", "brick", "page")


def stimulus_images():
    """Natural images shipped with scikit-image and scikit-learn, as float RGB in [0, 1].

    Returns
    -------
    list of ndarray, each shape (H, W, 3), float32
    """
    import skimage.data

    images = []
    for name in _SKIMAGE_IMAGES:
        try:
            img = np.asarray(getattr(skimage.data, name)())
        except Exception:  # an image that would need a download is simply left out
            continue
        images.append(img)
    try:
        from sklearn.datasets import load_sample_images

        images.extend(load_sample_images().images)
    except Exception:
        pass
    out = []
    for img in images:
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        img = img[..., :3].astype(np.float32)
        img /= 255.0 if img.max() > 1.0 else 1.0
        out.append(img)
    if len(out) < 4:
        raise DataError("simulation: fewer than 4 stimulus images could be loaded from "
                        "scikit-image/scikit-learn; reinstall them with their data files")
    return out


def split_stimulus_images(images, seed=0, test_fraction=0.34):
    """Split the packaged images: training clips never show a test image, and vice versa.

    Returns
    -------
    train, test : list of ndarray
    """
    order = np.random.default_rng(seed + 7919).permutation(len(images))
    n_test = max(1, int(round(test_fraction * len(images))))
    return [images[i] for i in order[n_test:]], [images[i] for i in order[:n_test]]


def _smooth_texture(height, width, rng):
    """A coloured band-limited noise texture, float RGB in [0, 1]."""
    import cv2

    noise = rng.random((max(height // 8, 2), max(width // 8, 2), 3)).astype(np.float32)
    tex = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    tex += 0.25 * rng.random((height, width, 3)).astype(np.float32)
    tex -= tex.min()
    return tex / max(float(tex.max()), 1e-6)


def _shot_pan_zoom(img, n, width, height, rng):
    """Pan and zoom across a still image (a window of the output's aspect ratio)."""
    import cv2

    h, w = img.shape[:2]
    aspect = width / height
    max_w = min(w, h * aspect)
    sides = [max_w * rng.uniform(0.35, 1.0), max_w * rng.uniform(0.35, 1.0)]
    centres = [np.array([rng.uniform(s / 2, w - s / 2), rng.uniform(s / aspect / 2, h - s / aspect / 2)])
               for s in sides]
    flip = rng.random() < 0.5
    out = np.empty((n, height, width, 3), np.float32)
    for k in range(n):
        a = k / max(n - 1, 1)
        side = (1 - a) * sides[0] + a * sides[1]
        cx, cy = (1 - a) * centres[0] + a * centres[1]
        scale = width / side
        matrix = np.array([[scale, 0, width / 2 - scale * cx], [0, scale, height / 2 - scale * cy]])
        frame = cv2.warpAffine(img, matrix, (width, height), flags=cv2.INTER_AREA,
                               borderMode=cv2.BORDER_REFLECT)
        out[k] = frame[:, ::-1] if flip else frame
    return out


def _shot_shapes(n, width, height, fps, rng):
    """Bright and dark shapes moving over a drifting noise texture."""
    tex = _smooth_texture(height * 2, width * 2, rng)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    shapes = []
    for _ in range(int(rng.integers(2, 6))):
        shapes.append({"pos": rng.uniform([0, 0], [width, height]),
                       "vel": rng.normal(0, 0.25 * width, 2) / fps,
                       "r": rng.uniform(0.06, 0.2) * height, "round": rng.random() < 0.5,
                       "colour": rng.random(3).astype(np.float32)})
    drift = rng.normal(0, 0.1 * width, 2) / fps
    out = np.empty((n, height, width, 3), np.float32)
    for k in range(n):
        ox = int(abs(drift[0] * k)) % width
        oy = int(abs(drift[1] * k)) % height
        frame = tex[oy:oy + height, ox:ox + width].copy()
        for sh in shapes:
            cx, cy = sh["pos"] + sh["vel"] * k
            cx, cy = cx % width, cy % height
            if sh["round"]:
                inside = (xx - cx) ** 2 + (yy - cy) ** 2 < sh["r"] ** 2
            else:
                inside = (np.abs(xx - cx) < sh["r"]) & (np.abs(yy - cy) < 0.6 * sh["r"])
            frame[inside] = sh["colour"]
        out[k] = frame
    return out


def _shot_grating(n, width, height, fps, rng):
    """A drifting sinusoidal grating of random orientation, frequency and colours."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / height
    theta = rng.uniform(0, np.pi)
    freq = rng.uniform(1.5, 8.0) * 2 * np.pi
    speed = rng.uniform(-1.5, 1.5) * 2 * np.pi / fps
    c0, c1 = rng.random(3).astype(np.float32), rng.random(3).astype(np.float32)
    phase_map = freq * (np.cos(theta) * xx + np.sin(theta) * yy)
    out = np.empty((n, height, width, 3), np.float32)
    for k in range(n):
        g = 0.5 + 0.5 * np.sin(phase_map + speed * k)
        out[k] = g[..., None] * c0 + (1 - g[..., None]) * c1
    return out


def render_shots(images, n_frames, width, height, fps, rng, min_shot_s=1.5, max_shot_s=6.0):
    """Stimulus video as a sequence of shots separated by cuts, yielded shot by shot.

    Shots are pans/zooms over ``images``, moving shapes over textures, or drifting gratings
    (procedural scenes are new at every draw, so no two clips share one).

    Yields
    ------
    ndarray of uint8, shape (n_shot_frames, height, width, 3)
    """
    t = 0
    while t < n_frames:
        n = int(min(round(rng.uniform(min_shot_s, max_shot_s) * fps), n_frames - t))
        kind = rng.choice(["image", "image", "shapes", "grating"])
        if kind == "image":
            shot = _shot_pan_zoom(images[rng.integers(len(images))], n, width, height, rng)
        elif kind == "shapes":
            shot = _shot_shapes(n, width, height, fps, rng)
        else:
            shot = _shot_grating(n, width, height, fps, rng)
        yield np.clip(shot * 255.0 + 0.5, 0, 255).astype(np.uint8)
        t += n


def make_voxels(n_voxels, rf_sigma, rng):
    """True pRFs of every ROI part.

    Returns
    -------
    dict of str -> dict
        For keys ``V1d`` ... ``V3v``: ``x`` (horizontal, -0.5 left ... +0.5 right), ``y``
        (vertical, -0.5 top ... +0.5 bottom) centres in [-0.5, 0.5) of the warped frame, and
        ``sigma`` (same units). Dorsal parts cover the lower visual field (y > 0), ventral parts
        the upper (y < 0).
    """
    voxels = {}
    for roi, n_roi, sigma0 in zip(("V1", "V2", "V3"), n_voxels, rf_sigma):
        for part, n_part in (("d", n_roi // 2), ("v", n_roi - n_roi // 2)):
            ecc = 0.47 * np.sqrt(rng.uniform(0.0, 1.0, n_part))
            theta = rng.uniform(0.02, np.pi - 0.02, n_part) * (1 if part == "d" else -1)
            voxels[roi + part] = {"x": np.clip(ecc * np.cos(theta), -0.5, 0.499),
                                  "y": np.clip(ecc * np.sin(theta), -0.5, 0.499),
                                  "sigma": sigma0 * (1.0 + 4.0 * ecc)}
    return voxels


def _prf_weights(voxel, size):
    """Gaussian pRF weights of a ROI part over the pixels: (n_voxels, size*size), rows sum to 1.

    Pixel (i, j) of the warped frame sits at y = (i + 0.5) / size - 0.5, x = (j + 0.5) / size - 0.5.
    """
    grid = (np.arange(size) + 0.5) / size - 0.5
    d_y = (grid[None, :] - voxel["y"][:, None]) ** 2
    d_x = (grid[None, :] - voxel["x"][:, None]) ** 2
    sig2 = 2 * voxel["sigma"][:, None] ** 2
    w = np.exp(-d_y / sig2)[:, :, None] * np.exp(-d_x / sig2)[:, None, :]
    w = w.reshape(len(voxel["x"]), size * size)
    w = (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
    # weights far out in the Gaussian's tail become float32 subnormals, which make every product
    # with them about ten times slower; as zeros they leave every sum's float32 value unchanged
    w[w < np.finfo(np.float32).tiny] = 0.0
    return w


GRID = 112  # the release's RF centres were estimated on a 112-px grid

# bumped whenever the simulator writes different data for the same settings (cache key)
SIMULATOR_VERSION = 3


def _on_grid(values):
    """Centres as the release stores them: cells of the 112-px grid, normalised to [-0.5, 0.5)."""
    return np.clip(np.round((values + 0.5) * GRID), 0, GRID - 1) / GRID - 0.5


ROI_PARTS = tuple(roi + part for roi in ("V1", "V2", "V3") for part in ("d", "v"))


def _place_voxels(voxels, n_nonvisual, rng):
    """Scatter the visual voxels among the brain's flattened voxels.

    Returns
    -------
    masks : dict of str -> ndarray of bool, shape (n_brain,)
        Per ROI part, as ``roimask.mat`` holds them.
    brain_index : ndarray of int, shape (n_visual,)
        Brain position of every visual voxel, in mask order (V1d, V1v, ..., V3v).
    """
    n_visual = sum(len(voxels[k]["x"]) for k in ROI_PARTS)
    n_brain = n_visual + n_nonvisual
    order = rng.permutation(n_brain)  # where each voxel sits in the flattened brain
    masks, positions, start = {}, [], 0
    for key in ROI_PARTS:
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
    for key in ROI_PARTS:
        n = len(voxels[key]["x"])
        err = rng.normal(0.0, sim.centre_error_sd, (2, n))
        x = _on_grid(voxels[key]["x"] + err[0])
        y = _on_grid(voxels[key]["y"] + err[1])
        missing = rng.random(n) < sim.nan_fraction
        x[missing] = np.nan
        y[missing] = np.nan
        cols_disk[key], rows_disk[key] = x[:, None], y[:, None]
    write_mat(os.path.join(out_dir, "roimask.mat"), {k: masks[k][:, None] for k in ROI_PARTS},
              sim.mat_version)
    write_mat(os.path.join(out_dir, "col_centers_112px.mat"), cols_disk, sim.mat_version)
    write_mat(os.path.join(out_dir, "row_centers_112px.mat"), rows_disk, sim.mat_version)


class _Scanner:
    """The simulated participant in the scanner: frames -> noise-free BOLD -> noisy brain volumes.

    A voxel's neural drive comes from :class:`~brain2pix_gluon.data.cortex.VoxelModel`
    (``simulation.drive=cortex``: compressed local contrast energy, colour opponency, a
    little luminance, mixed per ROI) or, with ``simulation.drive=luminance``, from its
    pRF-weighted luminance alone (the linear model of simulator version 2). The BOLD signal is the
    drive convolved with the HRF, times the voxel's gain. After the video the screen is a uniform
    grey at the video's mean level while the brain keeps being scanned.
    """

    def __init__(self, voxels, brain_index, n_brain, sim, data, rng):
        self.size, self.max_ratio, self.noise_sd = data.image_size, data.max_ratio, sim.noise_sd
        self.weights = np.concatenate([_prf_weights(voxels[k], self.size) for k in ROI_PARTS])
        self.brain_index, self.n_brain = brain_index, n_brain
        self.hrf = double_gamma_hrf(data.tr)
        self.gains = rng.uniform(0.5, 1.5, len(brain_index)).astype(np.float32)
        self.baseline = rng.uniform(50, 150, n_brain).astype(np.float32)
        self.drive_model = sim.drive
        roi_index = np.concatenate([np.full(len(voxels[k]["x"]), ROIS.index(k[:2]))
                                    for k in ROI_PARTS])
        # the voxels' hue preferences come from their own stream, so that every other draw (run
        # lengths, noise) is the one simulator version 2 made for the same seed
        self.cortex = VoxelModel(self.weights, roi_index, drive_table(sim), sim.css_exponent,
                                 np.random.default_rng([sim.seed, 3]))

    def bold(self, frames_uint8, n_volumes):
        """Noise-free BOLD, shape (n_volumes, n_visual), of frames shown one per TR."""
        warped = fisheye_warp(frames_uint8.astype(np.float32) / 255.0, self.max_ratio)
        if self.drive_model == "luminance":
            # exactly as simulator version 2 (one product over every volume: the same floats)
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


def _simulate_run(out_dir, split, name, n_volumes, images, scanner, sim, data, ext, rng):
    """Write one run's video and voxels (a test clip's repetitions); return its noise-free
    BOLD and the number of frames it shows."""
    tail = int(round(rng.uniform(*sim.post_stimulus_s) / data.tr))
    n_tr_frames = n_volumes - max(tail, data.shift + data.n_trs)
    if n_tr_frames < 1:
        raise DataError(f"simulation: {split} runs of {n_volumes} volumes leave no room for a "
                        f"video before {tail} post-stimulus volumes; raise "
                        f"simulation.volumes_per_{'run' if split == 'train' else 'clip'}")
    video_path = os.path.join(out_dir, split, f"{name}.{ext}")
    n_native = int(round(n_tr_frames * data.tr * sim.video_fps))
    width, height = sim.video_size
    with VideoWriter(video_path, width, height, sim.video_fps) as writer:
        for shot in render_shots(images, n_native, width, height, sim.video_fps, rng):
            writer.write(shot)
    decoded = read_video(video_path, data.image_size, data.tr)
    signal = scanner.bold(decoded, n_volumes)
    if split == "train":
        np.save(os.path.join(out_dir, split, f"{name}.npy"), scanner.scan(signal, rng))
    else:   # repetitions, each z-scored as preprocessed data would be
        for rep in range(sim.n_repetitions):
            run = scanner.scan(signal, rng)
            run = (run - run.mean(0)) / run.std(0)
            np.save(os.path.join(out_dir, split, f"{name}_rep_{rep + 1:02d}.npy"),
                    run.astype(np.float32))
    return signal, len(decoded)


def simulate_dataset(out_dir, sim=None, data=None, show_progress=True):
    """Write a simulated raw dataset to ``out_dir`` (see the module docstring).

    Steps: true pRFs, voxel placement and the ROI/centre files; then every training run and test
    clip (video, BOLD, noisy volumes); then the truth files.

    Parameters
    ----------
    out_dir : str
    sim : SimulationConfig, optional
    data : DataConfig, optional
        ``image_size``, ``tr``, ``max_ratio``, ``shift`` and ``n_trs`` are used.
    show_progress : bool

    Returns
    -------
    str
        ``out_dir``.
    """
    sim = sim or SimulationConfig()
    data = data or DataConfig()
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
    images = dict(zip(("train", "test"), split_stimulus_images(stimulus_images(), sim.seed)))

    jobs = [("train", f"run_{i + 1:03d}", sim.volumes_per_run) for i in range(sim.n_train_runs)]
    jobs += [("test", f"clip_{i + 1:02d}", sim.volumes_per_clip) for i in range(sim.n_test_clips)]
    clean, n_frames = {}, []
    for split, name, n_volumes in progress(jobs, desc="simulate", enabled=show_progress, unit="run"):
        clean[name], frames = _simulate_run(out_dir, split, name, n_volumes, images[split],
                                            scanner, sim, data, ext, rng)
        n_frames.append(frames)
    np.savez(os.path.join(out_dir, "truth.npz"),
             **{f"{k}_x": voxels[k]["x"] for k in ROI_PARTS},
             **{f"{k}_y": voxels[k]["y"] for k in ROI_PARTS},
             **{f"{k}_sigma": voxels[k]["sigma"] for k in ROI_PARTS},
             gains=scanner.gains, hrf=scanner.hrf, colour_polarity=scanner.cortex.polarity,
             drive_mix=scanner.cortex.mix, css_exponent=scanner.cortex.exponent, run_names=np.array([j[1] for j in jobs]),
             run_frames=np.array(n_frames), run_volumes=np.array([j[2] for j in jobs]))
    # noise-free BOLD of every run, columns in mask order (V1d, V1v, ..., V3v): the oracle
    np.savez(os.path.join(out_dir, "truth_signals.npz"), **clean)
    get_logger().info("simulated dataset written to %s (%d brain voxels, %d visual)", out_dir,
                      n_brain, len(brain_index))
    return out_dir
