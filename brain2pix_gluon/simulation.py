"""A simulated Brain2Pix dataset, written in the authors' raw layout (``brain2pix simulate``).

The simulator exercises the real readers and ``prepare`` unchanged:

* **Stimuli**: natural images that ship inside installed packages (scikit-image's data images,
  scikit-learn's sample images), animated into one-frame-per-TR videos with pans, zooms and cuts,
  written as real MP4 files and decoded back with the package's own reader.
* **Voxels**: V1, V2 and V3, each with a dorsal (lower visual field) and a ventral (upper visual
  field) part, with isotropic Gaussian population receptive fields on the fisheye-warped frame
  whose size grows with eccentricity and from V1 to V3. A voxel's neural drive is its pRF-weighted
  luminance; the BOLD signal is that drive convolved with a canonical double-gamma HRF sampled at
  the TR, times a gain, plus a baseline and white noise. Non-visual voxels carry noise only.
* **RF centres on disk** carry a Gaussian estimation error and a few NaNs (no estimate); the true
  centres are kept in ``truth.npz``. Centres are written so that the *reference* index order
  (map row from the column centre, SPEC 3) puts each voxel on its true pixel.
* **Test clips** are repeated ``n_repetitions`` times with independent noise, each repetition
  z-scored as preprocessed data would be, so that averaging on read raises the SNR.
"""

import os

import numpy as np

from .config import SimulationConfig, DataConfig
from .errors import DataError
from .io.video import read_video, write_video
from .preprocessing.retina import fisheye_warp
from .utils import get_logger, progress

__all__ = ["simulate_dataset", "stimulus_images", "double_gamma_hrf", "make_voxels", "render_video",
           "oracle_patterns"]

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


def render_video(images, n_frames, size, rng, min_shot=6, max_shot=30):
    """Animate still images into ``n_frames`` frames with pans, zooms and cuts.

    Returns
    -------
    ndarray of uint8, shape (n_frames, size, size, 3)
    """
    import cv2

    frames = np.empty((n_frames, size, size, 3), np.uint8)
    t = 0
    while t < n_frames:
        img = images[rng.integers(len(images))]
        h, w = img.shape[:2]
        length = int(min(rng.integers(min_shot, max_shot + 1), n_frames - t))
        side0 = min(h, w) * rng.uniform(0.35, 1.0)
        side1 = np.clip(side0 * rng.uniform(0.6, 1.6), 0.2 * min(h, w), min(h, w))
        centres = [np.array([rng.uniform(s / 2, w - s / 2), rng.uniform(s / 2, h - s / 2)])
                   for s in (side0, side1)]
        flip = rng.random() < 0.5
        for k in range(length):
            a = k / max(length - 1, 1)
            side = (1 - a) * side0 + a * side1
            cx, cy = (1 - a) * centres[0] + a * centres[1]
            scale = size / side
            matrix = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]])
            frame = cv2.warpAffine(img, matrix, (size, size), flags=cv2.INTER_AREA,
                                   borderMode=cv2.BORDER_REFLECT)
            if flip:
                frame = frame[:, ::-1]
            frames[t + k] = np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)
        t += length
    return frames


def double_gamma_hrf(tr=0.7, duration=32.0, peak=6.0, undershoot=16.0, ratio=1.0 / 6.0):
    """Canonical double-gamma HRF sampled every ``tr`` seconds, normalised to unit sum."""
    from scipy.stats import gamma

    times = np.arange(0.0, duration, tr)
    hrf = gamma.pdf(times, peak) - ratio * gamma.pdf(times, undershoot)
    return hrf / hrf.sum()


def make_voxels(n_voxels, rf_sigma, rng):
    """True pRFs of every ROI part.

    Returns
    -------
    dict of str -> dict
        For keys ``V1d`` ... ``V3v``: ``rows``, ``cols`` (pixel-space centres in [-0.5, 0.5),
        row = vertical position, down positive) and ``sigma`` (image units).
    """
    voxels = {}
    for roi, n_roi, sigma0 in zip(("V1", "V2", "V3"), n_voxels, rf_sigma):
        for part, n_part in (("d", n_roi // 2), ("v", n_roi - n_roi // 2)):
            ecc = 0.47 * np.sqrt(rng.uniform(0.0, 1.0, n_part))
            # dorsal = lower visual field (image rows below the centre), ventral = upper
            theta = rng.uniform(0.02, np.pi - 0.02, n_part) * (1 if part == "d" else -1)
            rows = np.clip(ecc * np.sin(theta), -0.5, 0.499)
            cols = np.clip(ecc * np.cos(theta), -0.5, 0.499)
            voxels[roi + part] = {"rows": rows, "cols": cols,
                                  "sigma": sigma0 * (1.0 + 4.0 * ecc)}
    return voxels


def _prf_weights(voxel, size):
    """Gaussian pRF weights of a ROI part over the pixels: (n_voxels, size*size), rows sum to 1."""
    grid = (np.arange(size) + 0.5) / size - 0.5
    d_rows = (grid[None, :] - voxel["rows"][:, None]) ** 2
    d_cols = (grid[None, :] - voxel["cols"][:, None]) ** 2
    sig2 = 2 * voxel["sigma"][:, None] ** 2
    w = np.exp(-d_rows / sig2)[:, :, None] * np.exp(-d_cols / sig2)[:, None, :]
    w = w.reshape(len(voxel["rows"]), size * size)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def simulate_dataset(out_dir, sim=None, data=None, show_progress=True):
    """Write a simulated raw dataset to ``out_dir`` (see the module docstring).

    Parameters
    ----------
    out_dir : str
    sim : SimulationConfig, optional
    data : DataConfig, optional
        Only ``image_size``, ``tr`` and ``max_ratio`` are used.
    show_progress : bool

    Returns
    -------
    str
        ``out_dir``.
    """
    from scipy import io as sio

    sim = sim or SimulationConfig()
    data = data or DataConfig()
    size = data.image_size
    rng = np.random.default_rng(sim.seed)
    os.makedirs(os.path.join(out_dir, "train"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "test"), exist_ok=True)

    keys = [roi + p for roi in ("V1", "V2", "V3") for p in ("d", "v")]
    voxels = make_voxels(sim.n_voxels, sim.rf_sigma, rng)
    n_visual = sum(len(voxels[k]["rows"]) for k in keys)
    n_brain = n_visual + sim.n_nonvisual_voxels
    order = rng.permutation(n_brain)  # where each voxel sits in the flattened brain
    masks, positions, start = {}, {}, 0
    for key in keys:
        n = len(voxels[key]["rows"])
        pos = np.sort(order[start:start + n])
        start += n
        mask = np.zeros(n_brain, bool)
        mask[pos] = True
        masks[key], positions[key] = mask, pos
    weights = np.concatenate([_prf_weights(voxels[k], size) for k in keys])  # mask order
    brain_index = np.concatenate([positions[k] for k in keys])

    # Written centres: reference index order takes the map row from "col_centers".
    cols_disk, rows_disk = {}, {}
    for key in keys:
        n = len(voxels[key]["rows"])
        err = rng.normal(0.0, sim.centre_error_sd, (2, n))
        c = np.clip(voxels[key]["rows"] + err[0], -0.5, 0.4999)
        r = np.clip(voxels[key]["cols"] + err[1], -0.5, 0.4999)
        missing = rng.random(n) < sim.nan_fraction
        c[missing] = np.nan
        r[missing] = np.nan
        cols_disk[key], rows_disk[key] = c[:, None], r[:, None]
    sio.savemat(os.path.join(out_dir, "roimask.mat"), {k: masks[k][:, None] for k in keys})
    sio.savemat(os.path.join(out_dir, "col_centers_112px.mat"), cols_disk)
    sio.savemat(os.path.join(out_dir, "row_centers_112px.mat"), rows_disk)

    hrf = double_gamma_hrf(data.tr)
    gains = rng.uniform(0.5, 1.5, n_visual).astype(np.float32)
    images = stimulus_images()
    ext = sim.video_ext

    def bold(frames_uint8):
        warped = fisheye_warp(frames_uint8.astype(np.float32) / 255.0, data.max_ratio)
        luminance = warped.mean(axis=-1).reshape(len(warped), -1)
        drive = luminance @ weights.T
        drive -= drive.mean(axis=0)
        signal = np.stack([np.convolve(d, hrf)[: len(d)] for d in drive.T], axis=1) * gains
        return signal.astype(np.float32)

    def brain(signal, noise_rng, baseline):
        n_t = signal.shape[0]
        scale = signal.std(axis=0).mean() + 1e-8
        out = noise_rng.normal(0.0, sim.noise_sd * scale, (n_t, n_brain)).astype(np.float32)
        out[:, brain_index] += signal
        return out + baseline

    baseline = rng.uniform(50, 150, n_brain).astype(np.float32)
    clean = {}
    log = get_logger()
    jobs = [("train", f"run_{i + 1:03d}", sim.volumes_per_run) for i in range(sim.n_train_runs)]
    jobs += [("test", f"clip_{i + 1:02d}", sim.volumes_per_clip) for i in range(sim.n_test_clips)]
    for split, name, n_volumes in progress(jobs, desc="simulate", enabled=show_progress, unit="run"):
        video_path = os.path.join(out_dir, split, f"{name}.{ext}")
        write_video(video_path, render_video(images, n_volumes, size, rng), fps=1.0 / data.tr)
        decoded = read_video(video_path, size, data.tr)[:n_volumes]
        if decoded.shape[0] < n_volumes:
            raise DataError(f"simulation: {video_path} decoded to {decoded.shape[0]} frames, "
                            f"expected {n_volumes}")
        signal = bold(decoded)
        clean[name] = signal
        if split == "train":
            np.save(os.path.join(out_dir, split, f"{name}.npy"), brain(signal, rng, baseline))
        else:
            for rep in range(sim.n_repetitions):
                run = brain(signal, rng, baseline)
                run = (run - run.mean(0)) / run.std(0)
                np.save(os.path.join(out_dir, split, f"{name}_rep_{rep + 1:02d}.npy"),
                        run.astype(np.float32))
    np.savez(os.path.join(out_dir, "truth.npz"),
             **{f"{k}_rows": voxels[k]["rows"] for k in keys},
             **{f"{k}_cols": voxels[k]["cols"] for k in keys},
             **{f"{k}_sigma": voxels[k]["sigma"] for k in keys},
             gains=gains, hrf=hrf)
    # noise-free BOLD of every run, columns in mask order (V1d, V1v, ..., V3v): the oracle
    np.savez(os.path.join(out_dir, "truth_signals.npz"), **clean)
    log.info("simulated dataset written to %s (%d brain voxels, %d visual)", out_dir, n_brain, n_visual)
    return out_dir


def oracle_patterns(raw_dir, prepared_path):
    """Noise-free voxel patterns of a prepared split's samples (the simulator's ground truth).

    Each sample's pattern is the mean over its window of the noise-free BOLD signal of the voxels
    the prepared file holds (same ROIs and order), i.e. what a perfect encoding model predicts.

    Returns
    -------
    ndarray, shape (n_samples, n_voxels_total), float32
    """
    import json

    from .io.prepared import open_prepared
    from .io.raw import MASK_KEYS, load_rf_centres, load_roi_masks

    masks = load_roi_masks(os.path.join(raw_dir, "roimask.mat"))
    cols, rows = load_rf_centres(os.path.join(raw_dir, "col_centers_112px.mat"),
                                 os.path.join(raw_dir, "row_centers_112px.mat"), masks)
    offsets, start = {}, 0
    for key in MASK_KEYS:
        offsets[key] = start
        start += int(masks[key].sum())
    with open_prepared(prepared_path) as handle:
        rois = json.loads(handle.attrs["rois"])
        n_trs = int(json.loads(handle.attrs["config"])["n_trs"])
        samples = handle["samples"][()]
        names = [n.decode() for n in handle["runs/names"][()]]
    columns = []
    for roi in rois:
        for part in ("d", "v"):
            key = roi + part
            finite = np.flatnonzero(np.isfinite(cols[key]) & np.isfinite(rows[key]))
            columns.append(offsets[key] + finite)
    columns = np.concatenate(columns)
    with np.load(os.path.join(raw_dir, "truth_signals.npz")) as truth:
        signals = {name: truth[name][:, columns] for name in names}
    out = np.stack([signals[names[run]][first:first + n_trs].mean(axis=0)
                    for run, first in zip(samples[:, 0], samples[:, 2])])
    return out.astype(np.float32)
