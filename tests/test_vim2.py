"""vim-2 reader on a tiny fixture written in the release's layout (MATLAB v7.3, column-major)."""

import os

import h5py
import numpy as np
import pytest
from scipy import ndimage

from brain2pix_gluon.config import Config, apply_overrides
from brain2pix_gluon.errors import DataError
from brain2pix_gluon.io.vim2 import (ROI_NAMES, VIM2_KEYS, Vim2Dataset, load_vim2_centres,
                                    write_vim2_files)
from brain2pix_gluon.preprocessing.retina import fisheye_warp

HZ, SIZE, VOLUME = 15, 32, (3, 4, 5)          # MATLAB size of the tiny brain volume
N_TRAIN, N_TEST, N_REPS = 120, 10, 2


def _hrf(tr):
    from math import gamma

    t = np.arange(0.0, 32.0, tr)
    h = t ** 5 * np.exp(-t) / gamma(6) - t ** 15 * np.exp(-t) / gamma(16) / 6.0
    return h / h.sum()


@pytest.fixture(scope="module")
def vim2(tmp_path_factory):
    """Random textures at 15 Hz; voxels respond to the frame at each 1-s TR onset."""
    rng = np.random.default_rng(7)
    n_vox = int(np.prod(VOLUME))
    noise = ndimage.gaussian_filter(rng.normal(size=(N_TRAIN * HZ, SIZE, SIZE)), (0, 1, 1))
    grey = np.clip(128 + 50 * noise / noise.std(), 0, 255).astype(np.uint8)
    train_frames = np.repeat(grey[..., None], 3, axis=-1)
    test_frames = train_frames[: N_TEST * HZ].copy()
    # ROIs: disjoint voxel sets, each described by a MATLAB-oriented volume
    order = rng.permutation(n_vox)
    rois, members = {}, {}
    for i, name in enumerate(ROI_NAMES):
        idx = np.sort(order[i * 8:(i + 1) * 8])
        flat = np.zeros(n_vox, bool)
        flat[idx] = True
        rois[name] = flat.reshape(VOLUME, order="F")   # MATLAB linear order = Fortran order
        members[name] = idx
    xs = rng.uniform(-0.35, 0.35, n_vox)
    ys = rng.uniform(-0.35, 0.05, n_vox)
    sigmas = np.full(n_vox, 0.04)
    coords = (np.arange(SIZE) + 0.5) / SIZE - 0.5
    weights = np.exp(-((coords[None, :, None] - ys[:, None, None]) ** 2
                       + (coords[None, None, :] - xs[:, None, None]) ** 2) / (2 * sigmas[:, None, None] ** 2))
    onset = train_frames[::HZ]                                     # the frame at each TR onset
    luminance = fisheye_warp(onset.astype(np.float32) / 255.0).mean(axis=-1)
    drive = np.einsum("tyx,vyx->tv", luminance, weights)
    responses = np.empty_like(drive)
    for start in range(0, N_TRAIN, 40):                            # runs of 40 volumes
        # the run's mean luminance as what came before it: the responses follow the stimulus, not
        # an onset response filling most of a 40-s run (estimate-rf treats onsets as nuisance)
        block = drive[start:start + 40] - drive[start:start + 40].mean(axis=0)
        responses[start:start + 40] = np.stack(
            [np.convolve(block[:, v], _hrf(1.0))[: len(block)] for v in range(n_vox)], 1)
    responses = responses / responses.std(0) + 0.3 * rng.normal(size=responses.shape)
    outside = order[-5:]                                           # out of the brain: NaN
    responses[:, outside] = np.nan
    noise_voxels = members["v3rh"][:3]                             # in an ROI, but no signal
    responses[:, noise_voxels] = rng.normal(size=(N_TRAIN, 3))
    test = rng.normal(size=(N_TEST, n_vox))
    reps = rng.normal(size=(N_REPS, N_TEST, n_vox))
    folder = str(tmp_path_factory.mktemp("vim2"))
    write_vim2_files(folder, 1, train_frames, test_frames, responses, test, reps, rois)
    return dict(folder=folder, frames=train_frames, responses=responses, members=members,
                xs=xs, ys=ys, outside=outside, noise_voxels=noise_voxels, rois=rois, test=test)


def test_fixture_has_the_release_layout(vim2):
    stimuli = os.path.join(vim2["folder"], "Stimuli.mat")
    responses = os.path.join(vim2["folder"], "VoxelResponses_subject1.mat")
    for path in (stimuli, responses):
        with open(path, "rb") as handle:
            assert handle.read(10) == b"MATLAB 7.3"
    with h5py.File(stimuli, "r") as handle:
        # MATLAB H x W x 3 x N uint8 is stored reversed (column-major)
        assert handle["st"].shape == (N_TRAIN * HZ, 3, SIZE, SIZE) and handle["st"].dtype == np.uint8
        assert handle["sv"].shape == (N_TEST * HZ, 3, SIZE, SIZE)
    with h5py.File(responses, "r") as handle:
        assert handle["rt"].shape == (N_TRAIN, np.prod(VOLUME))     # MATLAB voxels x TRs
        assert handle["rva"].shape == (N_REPS, N_TEST, np.prod(VOLUME))   # voxels x TRs x reps
        assert handle["roi/v1lh"].shape == VOLUME[::-1]
        assert set(handle["roi"].keys()) == set(ROI_NAMES)


def test_reader_gives_upright_frames_one_per_tr():
    import tempfile

    n_vol, height, width = 4, 12, 12
    frames = np.zeros((n_vol * HZ, height, width, 3), np.uint8)
    frames[:, :3, :, 0] = 255            # red band along the top rows
    frames[:, :, :2, 1] = 255            # green band along the left columns
    frames[:, :, :, 2] = (np.arange(n_vol * HZ) % 200)[:, None, None]   # frame number
    n_vox = int(np.prod(VOLUME))
    rois = {name: np.ones(VOLUME, bool) for name in ROI_NAMES}
    with tempfile.TemporaryDirectory() as folder:
        write_vim2_files(folder, 2, frames, frames, np.zeros((n_vol, n_vox)),
                         np.zeros((n_vol, n_vox)), np.zeros((1, n_vol, n_vox)), rois)
        data = Vim2Dataset(folder, subject=2)
        out = data.frames("train", 1, 4, size=height)
    assert out.shape == (3, height, width, 3)
    np.testing.assert_array_equal(out[:, :, :, 2][:, 0, 0], [15, 30, 45])
    assert (out[:, :3, 5, 0] == 255).all() and (out[:, 5:, 5, 0] == 0).all()
    assert (out[:, 5, :2, 1] == 255).all() and (out[:, 5, 3:, 1] == 0).all()


def test_reader_masks_and_responses_follow_matlab_order(vim2):
    data = Vim2Dataset(vim2["folder"], subject=1)
    for name, key in zip(ROI_NAMES, VIM2_KEYS):
        np.testing.assert_array_equal(np.flatnonzero(data.masks[key]), vim2["members"][name])
    cols = vim2["members"]["v2rh"]
    np.testing.assert_array_equal(data.responses("train", 40, 80, cols),
                                  vim2["responses"][40:80][:, cols].astype(np.float32))
    assert np.isnan(data.responses("train", 0, 5)[:, vim2["outside"]]).all()
    np.testing.assert_allclose(data.responses("test", 0, N_TEST), vim2["test"], rtol=1e-6)
    assert data.runs(40) == [(0, 40), (40, 80), (80, 120)]


def test_estimate_rf_on_vim2(vim2, tmp_path):
    from brain2pix_gluon.cli import main
    from brain2pix_gluon.io.matlab import read_mat

    out = str(tmp_path / "rf")
    assert main(["estimate-rf", vim2["folder"], "--out", out, "--no-progress", "data.dataset=vim2",
                 "vim2.run_volumes=40", "data.image_size=32", "prf.r2_threshold=0.2",
                 "prf.drive=luminance"]) == 0     # the fixture's voxels follow luminance
    cols = read_mat(os.path.join(out, "col_centers_112px.mat"))
    rows = read_mat(os.path.join(out, "row_centers_112px.mat"))
    assert set(cols) == set(VIM2_KEYS)
    errors = []
    for name, key in zip(ROI_NAMES, VIM2_KEYS):
        members = vim2["members"][name]
        x, y = cols[key].reshape(-1), rows[key].reshape(-1)
        assert x.shape == members.shape
        dead = np.isin(members, vim2["outside"]) | np.isin(members, vim2["noise_voxels"])
        assert np.isnan(x[dead]).all() and np.isnan(y[dead]).all()
        errors.append(np.hypot(x[~dead] - vim2["xs"][members[~dead]],
                               y[~dead] - vim2["ys"][members[~dead]]))
    errors = np.concatenate(errors) * SIZE
    assert np.isfinite(errors).all()
    assert np.median(errors) <= 1.0
    # what prepare will read back: one value per ROI voxel, by hemisphere
    data = Vim2Dataset(vim2["folder"], subject=1)
    x, y = load_vim2_centres(out, data.masks)
    np.testing.assert_array_equal(x["V2rh"], cols["V2rh"].reshape(-1))
    with pytest.raises(DataError, match="expected 60 values .voxels of the ROI., got 8"):
        load_vim2_centres(out, {k: np.ones(60, bool) if k == "V1lh" else m
                                for k, m in data.masks.items()})


def test_bad_vim2_input(tmp_path, vim2):
    from brain2pix_gluon.io.matlab import write_mat

    with pytest.raises(DataError, match="CRCNS"):
        Vim2Dataset(str(tmp_path), subject=1)
    write_mat(str(tmp_path / "VoxelResponses_subject1.mat"), {"rt": np.zeros((3, 2))}, version="5")
    with pytest.raises(DataError, match="v5"):
        Vim2Dataset(str(tmp_path), subject=1)
    with pytest.raises(DataError, match="whole number of frames"):
        Vim2Dataset(vim2["folder"], subject=1, stimulus_hz=15.0, tr=0.7)
    config = apply_overrides(Config(), ["data.dataset=vim2", "vim2.run_volumes=200"])
    from brain2pix_gluon.preprocessing.estimate_rf import estimate_rf

    with pytest.raises(DataError, match="1 training run.*at least 2 .vim2.run_volumes = 200"):
        estimate_rf(vim2["folder"], str(tmp_path / "rf"), config, show_progress=False)
    assert not os.path.exists(tmp_path / "rf")
    short = str(tmp_path / "short")
    n_vox = int(np.prod(VOLUME))
    frames = np.zeros((4 * HZ - 1, 8, 8, 3), np.uint8)      # one frame short of 4 volumes
    write_vim2_files(short, 1, frames, frames, np.zeros((4, n_vox)), np.zeros((2, n_vox)),
                     np.zeros((1, 2, n_vox)), {n: np.ones(VOLUME, bool) for n in ROI_NAMES})
    with pytest.raises(DataError, match="'st': 59 frames"):
        Vim2Dataset(short, subject=1)


def test_roi_parts_by_hemisphere_are_stacked_left_then_right():
    from brain2pix_gluon.preprocessing.signals import select_roi_voxels

    signals = np.arange(2 * 5).reshape(2, 5).astype(float)
    masks = {"V1lh": np.array([0, 1, 0, 1, 0], bool), "V1rh": np.array([1, 0, 0, 0, 1], bool)}
    cols = {"V1lh": np.array([0.2, 0.3]), "V1rh": np.array([np.nan, -0.1])}
    rows = {"V1lh": np.array([0.0, 0.1]), "V1rh": np.array([0.0, 0.2])}
    voxels, x, y = select_roi_voxels(signals, masks, "V1", cols, rows, parts=("V1lh", "V1rh"))
    np.testing.assert_array_equal(voxels, signals[:, [1, 3, 4]])   # brain voxel 0: no centre
    np.testing.assert_array_equal(x, [0.2, 0.3, -0.1])
    np.testing.assert_array_equal(y, [0.0, 0.1, 0.2])
    with pytest.raises(DataError, match="'V1d' missing"):
        select_roi_voxels(signals, masks, "V1", cols, rows)          # the default parts: d, v


def test_hemisphere_report():
    from brain2pix_gluon.preprocessing.receptive_fields import format_retinotopy, hemisphere_report

    right, left = np.array([0.1, 0.2, 0.3, -0.1]), np.array([-0.2, -0.3, 0.05])
    y = lambda x: np.zeros_like(x)
    report = hemisphere_report({"V1": {"lh": (right, y(right)), "rh": (left, y(left))}})
    entry = report["rois"]["V1"]
    # 3 of 4 left-hemisphere voxels right of the centre, 2 of 3 right-hemisphere voxels left of it
    assert entry["lh_right"] == 0.75 and entry["rh_left"] == pytest.approx(2 / 3)
    assert entry["score_x"] == pytest.approx((0.75 + 2 / 3) / 2)
    assert entry["verdict"] == "unclear" and report["verdict"] == "unclear"
    good = hemisphere_report({"V1": {"lh": (right[:3], y(right[:3])), "rh": (left[:2], y(left[:2]))}})
    assert good["verdict"] == "aligned" and format_retinotopy(good)[-1].startswith("  verdict: aligned")
    mirrored = hemisphere_report({"V1": {"lh": (left[:2], y(left[:2])), "rh": (right[:3], y(right[:3]))}})
    assert mirrored["verdict"] == "mirrored"
    assert "WARNING: mirrored" in format_retinotopy(mirrored)[-1]
    assert "left hemisphere should see the right field" in format_retinotopy(mirrored)[0]
