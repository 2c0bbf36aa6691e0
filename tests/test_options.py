"""Options: prepared-data options (fisheye, zscore_test, storage
filter), the L2 feature distance, DataLoader workers, and ``brain2pix baseline nishimoto``.

Each expected value is computed here from the raw inputs or by hand, not by a second call of
the code under test.
"""

import os

import h5py
import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from brain2pix_gluon.config import LossConfig
from brain2pix_gluon.io.raw import discover_runs
from brain2pix_gluon.io.video import read_video
from brain2pix_gluon.model_zoo import get_model, initialize_paper
from brain2pix_gluon.preprocessing.prepare import prepare_dataset
from brain2pix_gluon.training import update_generator
from brain2pix_gluon.training.trainer import Trainer

from conftest import tiny_config

FIELDS = {"run": 0, "frame": 1, "frame_row": 3}


def _read_all(path):
    """Every dataset of an HDF5 file, by name."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return out


# ---------------------------------------------------------------- data options
def test_without_fisheye_the_targets_are_the_resized_frames(raw_dir, tmp_path):
    cfg = tiny_config("data.fisheye=false")
    path = prepare_dataset(raw_dir, str(tmp_path / "flat"), cfg, splits=("train",),
                           show_progress=False)["train"]
    warped = prepare_dataset(raw_dir, str(tmp_path / "warped"), tiny_config(), splits=("train",),
                             show_progress=False)["train"]
    videos = {run["name"]: read_video(run["video"], cfg.data.image_size, cfg.data.tr)
              for run in discover_runs(raw_dir, "train")}
    with h5py.File(path, "r") as f:
        frames, samples = f["frames"][()], f["samples"][()]
        names = [n.decode() if isinstance(n, bytes) else n for n in f["runs/names"][()]]
    for sample in samples[::7]:
        video = videos[names[sample[FIELDS["run"]]]]
        expected = np.transpose(video[sample[FIELDS["frame"]]], (2, 0, 1)) / 255.0
        np.testing.assert_allclose(frames[sample[FIELDS["frame_row"]]].astype(np.float64), expected,
                                   atol=1e-3)   # float16 storage
    with h5py.File(warped, "r") as f:
        assert np.abs(f["frames"][()].astype(np.float32) - frames.astype(np.float32)).max() > 0.1


def _run_rows(path):
    """(start, stop) volume rows of each run of a prepared file."""
    with h5py.File(path, "r") as f:
        n = f["runs/n_volumes"][()]
    stops = np.cumsum(n)
    return list(zip(stops - n, stops))


def test_zscore_test_z_scores_each_test_clip(raw_dir, tmp_path, config):
    plain = prepare_dataset(raw_dir, str(tmp_path / "plain"), tiny_config(), splits=("test",),
                            show_progress=False)["test"]
    scored = prepare_dataset(raw_dir, str(tmp_path / "z"), tiny_config("data.zscore_test=true"),
                             splits=("test",), show_progress=False)["test"]
    a, b = _read_all(plain), _read_all(scored)
    for roi in config.data.rois:
        raw, z = a[f"voxels/{roi}"].astype(np.float64), b[f"voxels/{roi}"]
        for start, stop in _run_rows(plain):
            block = raw[start:stop]
            sd = block.std(axis=0)
            expected = np.where(sd > 0, (block - block.mean(axis=0)) / np.where(sd > 0, sd, 1), 0)
            np.testing.assert_allclose(z[start:stop], expected, atol=1e-4, err_msg=roi)
            assert not np.allclose(block.std(axis=0), 1, atol=0.05)   # given data are not z-scored
    # the RFSimages are rendered from the z-scored voxels too
    assert not np.allclose(a["rf_images"], b["rf_images"])
    np.testing.assert_array_equal(a["frames"], b["frames"])


def test_gzip_lzf_and_uncompressed_storage_hold_identical_arrays(raw_dir, tmp_path):
    files = {c: prepare_dataset(raw_dir, str(tmp_path / c), tiny_config(f"data.compression={c}"),
                                splits=("train",), show_progress=False)["train"]
             for c in ("lzf", "gzip", "none")}
    arrays = {c: _read_all(p) for c, p in files.items()}
    assert set(arrays["gzip"]) == set(arrays["lzf"]) == set(arrays["none"])
    for name, value in arrays["lzf"].items():
        np.testing.assert_array_equal(arrays["gzip"][name], value, err_msg=name)
        np.testing.assert_array_equal(arrays["none"][name], value, err_msg=name)
    # lzf compresses the RFSimages only (frames and voxels gain little from it; see _filters)
    for c, frames, rf_images in (("lzf", None, "lzf"), ("gzip", "gzip", "gzip"),
                                 ("none", None, None)):
        with h5py.File(files[c], "r") as f:
            assert f["frames"].compression == frames and f["rf_images"].compression == rf_images
            assert all(f[k].fletcher32 for k in ("frames", "rf_images", "voxels/V1"))
    assert os.path.getsize(files["none"]) > os.path.getsize(files["gzip"])


# ---------------------------------------------------------------- L2 feature distance
def _pool(images):
    return mx.nd.Pooling(images, kernel=(4, 4), stride=(4, 4), pool_type="avg")


@pytest.mark.parametrize("distance", ["l1", "l2"])
def test_feature_distance_option_in_the_generator_step(distance):
    mx.random.seed(0)
    g = initialize_paper(get_model("unet_generator", in_channels=4, ngf=16))
    d = initialize_paper(get_model("patch_discriminator", in_channels=7, ndf=8))
    tg = gluon.Trainer(g.collect_params(), "adam", {"learning_rate": 2e-4, "beta1": 0.5})
    rng = np.random.default_rng(2)
    x = mx.nd.array(rng.random((2, 4, 32, 32)))
    y = mx.nd.array(rng.random((2, 3, 32, 32)))
    saved = {k: p.data().copy() for k, p in g.collect_params().items()}
    with mx.autograd.train_mode():               # the step's forward uses batch statistics
        fake = g(x)
    for k, p in g.collect_params().items():
        p.set_data(saved[k])
    # by hand: 4x4 block means of the fake and of the target, then their mean (squared or
    # absolute) difference
    def blocks(a):
        a = a.asnumpy().astype(np.float64)
        return a.reshape(2, 3, 8, 4, 8, 4).mean(axis=(3, 5))

    diff = blocks(fake) - blocks(y)
    expected = np.mean(diff ** 2) if distance == "l2" else np.mean(np.abs(diff))
    out = update_generator(g, d, tg, _pool, x, y, LossConfig(feature_distance=distance))
    assert out["feature"] == pytest.approx(expected, rel=1e-4)


def test_trainer_passes_the_feature_distance_to_its_steps(prepared_dir, tmp_path, monkeypatch):
    import brain2pix_gluon.training.steps as steps

    kinds = []
    original = steps.feature_distance

    def spy(a, b, kind="l1"):
        kinds.append(kind)
        return original(a, b, kind)

    monkeypatch.setattr(steps, "feature_distance", spy)
    cfg = tiny_config("loss.feature_distance=l2", "train.max_steps_per_epoch=1")
    Trainer(cfg, os.path.join(prepared_dir, "train.h5"), str(tmp_path), show_progress=False).fit()
    assert kinds and set(kinds) == {"l2"}


# ---------------------------------------------------------------- DataLoader workers
def _batches_seen(prepared_dir, run_dir, workers, monkeypatch):
    seen = []

    def record(self, batch, sync=True):
        seen.append([part.asnumpy().copy() for part in batch])
        return {"g": 0.0, "pixel": 0.0}

    monkeypatch.setattr(Trainer, "train_step", record)
    cfg = tiny_config(f"train.num_workers={workers}", "train.max_steps_per_epoch=3",
                      "train.epochs=2", "loss.feature_weight=0")
    Trainer(cfg, os.path.join(prepared_dir, "train.h5"), run_dir, show_progress=False).fit()
    return seen


def test_worker_processes_deliver_the_same_batches(prepared_dir, tmp_path, monkeypatch):
    inline = _batches_seen(prepared_dir, str(tmp_path / "w0"), 0, monkeypatch)
    workers = _batches_seen(prepared_dir, str(tmp_path / "w2"), 2, monkeypatch)
    assert len(inline) == len(workers) == 6
    for a, b in zip(inline, workers):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # and the two epochs are shuffled differently
    assert not np.array_equal(inline[0][-1], inline[3][-1])


# ---------------------------------------------------------------- brain2pix baseline nishimoto
class _TinyClipNet:
    """Stands in for C3D (whose real forward costs minutes on CPU here): block means of a clip."""

    def __call__(self, x):
        b = x.shape[0]
        pooled = mx.nd.Pooling(x.mean(axis=2), kernel=(14, 14), stride=(14, 14), pool_type="avg")
        flat = pooled.reshape((b, -1))
        return flat, flat, flat


class _TinyFrameNet:
    def __call__(self, x):
        flat = mx.nd.Pooling(x, kernel=(28, 28), stride=(28, 28), pool_type="avg").reshape((0, -1))
        return flat, flat, flat


def test_cli_baseline_nishimoto(prepared_dir, tmp_path, monkeypatch, capsys):
    import brain2pix_gluon.evaluation.features as features
    from brain2pix_gluon.cli import main
    from brain2pix_gluon.io.reconstructions import read_reconstructions

    built = []

    def tiny_nets(weights="pretrained", ctx=None, seed=0):
        built.append(weights)
        src = "tiny stand-in (test)"
        return _TinyFrameNet(), _TinyClipNet(), {"alexnet": src, "c3d": src}

    # the one factory of the evaluation's extractor builds the baseline's C3D too
    monkeypatch.setattr(features, "build_feature_nets", tiny_nets)
    out = str(tmp_path / "b1")
    assert main(["baseline", "nishimoto", "--data", prepared_dir, "--out", out, "--k", "1",
                 "--no-progress", "evaluation.feature_weights=random"]) == 0
    assert built == ["random"]
    path = os.path.join(out, "reconstructions.h5")
    assert path in capsys.readouterr().out
    data = read_reconstructions(path)
    with h5py.File(os.path.join(prepared_dir, "test.h5"), "r") as f:
        test_samples, test_frames = f["samples"][()], f["frames"][()].astype(np.float32)
    with h5py.File(os.path.join(prepared_dir, "train.h5"), "r") as f:
        train_frames = f["frames"][()].astype(np.float32)
    np.testing.assert_array_equal(data["samples"], test_samples)
    np.testing.assert_array_equal(data["targets"], test_frames[test_samples[:, FIELDS["frame_row"]]])
    # --k 1: every reconstruction is exactly one training frame
    flat_train = train_frames.reshape(len(train_frames), -1)
    for rec in data["reconstructions"]:
        assert np.abs(flat_train - rec.reshape(1, -1)).max(axis=1).min() < 1e-6
    assert data["attrs"]["variant"] == "nishimoto"
    # a missing prepared folder is reported, with exit status 2
    assert main(["baseline", "nishimoto", "--data", str(tmp_path / "none"), "--out", out + "x",
                 "--no-progress"]) == 2
