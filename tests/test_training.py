import json
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from brain2pix_gluon.config import LossConfig
from brain2pix_gluon.errors import CheckpointError, ConfigError
from brain2pix_gluon.model_zoo import get_model, initialize_paper
from brain2pix_gluon.training import (HistoryBuffer, feature_distance, l1_loss, sigmoid_bce,
                                      update_discriminator, update_generator)
from brain2pix_gluon.training.steps import generator_input
from brain2pix_gluon.training.trainer import Trainer

from conftest import tiny_config


# ---------------------------------------------------------------- history buffer
def _batch(values):
    return mx.nd.array(np.asarray(values, np.float32).reshape(-1, 1, 1, 1))


def test_history_passes_through_while_filling():
    buf = HistoryBuffer(capacity=5, swap_prob=1.0, seed=0)
    out = buf.query(_batch([1, 2, 3]))
    np.testing.assert_array_equal(out.asnumpy().ravel(), [1, 2, 3])
    out = buf.query(_batch([4, 5]))
    np.testing.assert_array_equal(out.asnumpy().ravel(), [4, 5])
    assert len(buf) == 5
    # full and swap_prob=1: every new sample is exchanged for a stored one
    out = buf.query(_batch([10, 11, 12])).asnumpy().ravel()
    assert set(out) <= {1, 2, 3, 4, 5, 10, 11}
    assert len(buf) == 5
    stored = sorted(float(s.asnumpy().ravel()[0]) for s in buf.samples)
    assert 12 in stored


def test_history_swaps_with_probability_one_half():
    buf = HistoryBuffer(capacity=50, swap_prob=0.5, seed=1)
    buf.query(_batch(np.arange(50)))
    new = np.arange(1000, 3000)
    out = np.concatenate([buf.query(_batch(new[k:k + 100])).asnumpy().ravel()
                          for k in range(0, len(new), 100)])
    swapped = np.mean(out != new)
    assert 0.46 < swapped < 0.54
    assert len(buf) == 50
    # a returned old sample is always something that was stored before
    assert np.all(out[out != new] < new.max())
    with pytest.raises(AssertionError):
        np.testing.assert_array_equal(out, new)


def test_history_state_round_trip():
    a = HistoryBuffer(capacity=4, seed=3)
    a.query(_batch([1, 2, 3, 4, 5, 6]))
    b = HistoryBuffer(capacity=4, seed=99)
    b.load_state_dict(a.state_dict())
    x = _batch(np.arange(20, 40))
    np.testing.assert_array_equal(a.query(x).asnumpy(), b.query(x).asnumpy())


def test_disabled_history_passes_everything():
    buf = HistoryBuffer(capacity=0)
    x = _batch([1, 2])
    assert buf.query(x) is x


# ---------------------------------------------------------------- losses
def test_losses_against_numpy(rng):
    logits = rng.normal(size=(3, 1, 4, 4)).astype(np.float32) * 3
    sig = 1 / (1 + np.exp(-logits))
    for t in (0.0, 1.0):
        expected = -np.mean(t * np.log(sig) + (1 - t) * np.log(1 - sig))
        assert sigmoid_bce(mx.nd.array(logits), t).asscalar() == pytest.approx(expected, rel=1e-5)
    a, b = rng.random((2, 2, 3, 5, 5)).astype(np.float32)
    assert l1_loss(mx.nd.array(a), mx.nd.array(b)).asscalar() == pytest.approx(np.abs(a - b).mean(), rel=1e-5)
    assert feature_distance(mx.nd.array(a), mx.nd.array(b), "l2").asscalar() == \
        pytest.approx(np.square(a - b).mean(), rel=1e-5)
    with pytest.raises(ConfigError, match="loss.feature_distance: expected 'l1' or 'l2'"):
        feature_distance(mx.nd.array(a), mx.nd.array(b), "cosine")


# ---------------------------------------------------------------- steps
def _nets(in_channels=4, size=32):
    mx.random.seed(0)
    g = initialize_paper(get_model("unet_generator", in_channels=in_channels, ngf=16))
    d = initialize_paper(get_model("patch_discriminator", in_channels=in_channels + 3, ndf=8))
    opt = {"learning_rate": 2e-4, "beta1": 0.5}
    return g, d, gluon.Trainer(g.collect_params(), "adam", opt), gluon.Trainer(d.collect_params(), "adam", opt)


def _snapshot(net):
    return {k: v.data().asnumpy().copy() for k, v in net.collect_params().items()}


def _changed(before, net, suffix=""):
    return [k for k, v in net.collect_params().items()
            if k.endswith(suffix) and not np.array_equal(before[k], v.data().asnumpy())]


def test_d_step_leaves_g_untouched_and_only_trains_d():
    g, d, tg, td = _nets()
    x = mx.nd.random.uniform(shape=(4, 4, 32, 32))
    y = mx.nd.random.uniform(shape=(4, 3, 32, 32))
    g_before, d_before = _snapshot(g), _snapshot(d)
    loss = update_discriminator(g, d, td, HistoryBuffer(), x, y)
    assert isinstance(loss, float) and loss > 0
    assert _changed(g_before, g) == []        # not even BatchNorm running statistics moved
    assert len(_changed(d_before, d, "weight")) == 5


class _SpyHistory:
    """Stands in for the history buffer: records each (input, fake) pair and the autograd state
    at the moment it arrives, and passes it through unchanged."""

    def __init__(self):
        self.pairs, self.recording, self.training = [], [], []

    def query(self, batch):
        self.pairs.append(batch.asnumpy().copy())
        self.recording.append(mx.autograd.is_recording())
        self.training.append(mx.autograd.is_training())
        return batch


def test_d_step_fakes_are_made_with_running_statistics():
    g, d, tg, td = _nets()
    rng = np.random.default_rng(7)
    # running statistics far from any batch's own, so that the two BatchNorm modes differ
    for name, p in g.collect_params().items():
        if name.endswith("running_mean"):
            p.set_data(mx.nd.array(rng.normal(0, 0.5, p.shape)))
        elif name.endswith("running_var"):
            p.set_data(mx.nd.array(rng.uniform(0.3, 3.0, p.shape)))
    x = mx.nd.array(rng.random((4, 4, 32, 32)))
    y = mx.nd.array(rng.random((4, 3, 32, 32)))
    saved = _snapshot(g)
    inference = g(x).asnumpy()
    with mx.autograd.record(train_mode=True):
        batch_stats = g(x).asnumpy()
    for k, p in g.collect_params().items():       # undo the running-statistics update
        p.set_data(mx.nd.array(saved[k]))
    assert np.abs(inference - batch_stats).max() > 0.05      # the two modes are told apart

    spy = _SpyHistory()
    update_discriminator(g, d, td, spy, x, y)
    assert len(spy.pairs) == 1 and spy.recording == [False] and spy.training == [False]
    pair_in = spy.pairs[0]
    assert pair_in.shape == (4, 4 + 3, 32, 32)
    np.testing.assert_array_equal(pair_in[:, :4], x.asnumpy())   # concat(input, fake)
    np.testing.assert_allclose(pair_in[:, 4:], inference, rtol=0, atol=1e-5)


def test_g_step_trains_g_not_d_and_reports_the_terms():
    g, d, tg, td = _nets()
    x = mx.nd.random.uniform(shape=(4, 4, 32, 32))
    y = mx.nd.random.uniform(shape=(4, 3, 32, 32))
    feature = lambda im: mx.nd.Pooling(im, kernel=(4, 4), stride=(4, 4), pool_type="avg")  # noqa: E731
    d_before, g_before = _snapshot(d), _snapshot(g)
    # the terms computed here, in numpy, from the nets before the step (training mode: batch
    # statistics, as the step sees them)
    with mx.autograd.train_mode():
        fake = g(x)
        logits = d(mx.nd.concat(x, fake, dim=1)).asnumpy().astype(np.float64)
    fake, target = fake.asnumpy().astype(np.float64), y.asnumpy().astype(np.float64)
    pool = lambda a: a.reshape(4, 3, 8, 4, 8, 4).mean(axis=(3, 5))  # noqa: E731
    pixel = np.abs(fake - target).mean()
    adversarial = np.log1p(np.exp(-logits)).mean()                    # BCE(sigmoid(l), 1)
    feat = np.abs(pool(fake) - pool(target)).mean()                   # l1, the default
    out = update_generator(g, d, tg, feature, x, y, LossConfig())
    assert set(out) == {"total", "pixel", "adversarial", "feature"}
    assert out["pixel"] == pytest.approx(pixel, rel=1e-4)
    assert out["adversarial"] == pytest.approx(adversarial, rel=1e-4)
    assert out["feature"] == pytest.approx(feat, rel=1e-4)
    # L_G = 1 * adversarial + 100 * feature + 1 * pixel (the paper's weights)
    assert out["total"] == pytest.approx(adversarial + 100 * feat + pixel, rel=1e-4)
    assert _changed(d_before, d, "weight") == []
    assert len(_changed(g_before, g, "weight")) == 10   # every conv of the U-Net


def test_ablation_switches_remove_exactly_their_term():
    g, d, tg, td = _nets()
    x = mx.nd.random.uniform(shape=(2, 4, 32, 32))
    y = mx.nd.random.uniform(shape=(2, 3, 32, 32))

    def never(_):
        raise AssertionError("the feature network must not run when its weight is 0")

    out = update_generator(g, d, tg, never, x, y, LossConfig(feature_weight=0))
    assert "feature" not in out
    assert out["total"] == pytest.approx(out["adversarial"] + out["pixel"], rel=1e-4)

    class NoD:
        def __call__(self, _):
            raise AssertionError("D must not run when the adversarial weight is 0")

    out = update_generator(g, NoD(), tg, never, x, y, LossConfig(feature_weight=0, adversarial_weight=0))
    assert set(out) == {"total", "pixel"} and out["total"] == pytest.approx(out["pixel"])


def test_a_few_iterations_lower_the_pixel_loss():
    g, d, tg, td = _nets()
    mx.random.seed(5)
    coarse = mx.nd.random.uniform(shape=(4, 4, 4, 4))
    x = mx.nd.UpSampling(coarse, scale=8, sample_type="nearest")   # smooth 32x32 inputs
    y = x[:, :3]            # learnable: the target is part of the input
    # with the paper's weights the adversarial term dominates the first iterations; the pixel
    # term alone shows within 30 steps of Adam(2e-4) that gradients reach every layer
    cfg = LossConfig(feature_weight=0, adversarial_weight=0)
    losses = [update_generator(g, d, tg, None, x, y, cfg)["pixel"] for _ in range(30)]
    assert losses[-1] < 0.95 * losses[0]
    assert np.mean(losses[-5:]) < np.mean(losses[5:10]) < np.mean(losses[:5])


def test_learned_rf_maps_are_added_to_the_fixed_rf_images():
    mx.random.seed(4)
    learned = initialize_paper(get_model("learned_rf", n_voxels=(3, 2), n_trs=2, size=32))
    rf = mx.nd.random.uniform(shape=(2, 4, 32, 32))
    voxels = mx.nd.random.normal(shape=(2, 2, 5))
    out = generator_input(rf, voxels, learned)
    np.testing.assert_allclose(out.asnumpy(), (rf + learned(voxels)).asnumpy(), atol=1e-6)
    for p in learned.collect_params().values():
        p.set_data(mx.nd.zeros(p.shape))
    np.testing.assert_array_equal(generator_input(rf, voxels, learned).asnumpy(), rf.asnumpy())
    shen = generator_input(rf, voxels, learned, include_rf=False)
    assert float(mx.nd.abs(shen).sum().asscalar()) == 0


# ---------------------------------------------------------------- trainer, checkpoints, resume
def _params(trainer):
    out = {}
    for name, net in trainer.nets.items():
        if net is not None:
            out.update({k: v.data().asnumpy() for k, v in net.collect_params().items()})
    return out


@pytest.mark.parametrize("variant", ["fixed_rf", "learned_rf"])
def test_stopped_and_resumed_equals_uninterrupted(prepared_dir, tmp_path, variant):
    cfg = tiny_config(f"model.variant={variant}", "train.epochs=2", "train.max_steps_per_epoch=3",
                      "train.history_capacity=5", "train.grid_samples=2", f"name={variant}")
    train, test = (os.path.join(prepared_dir, f) for f in ("train.h5", "test.h5"))
    straight = Trainer(cfg, train, str(tmp_path / "a"), test, show_progress=False)
    assert straight.fit() == "complete"

    first = Trainer(cfg, train, str(tmp_path / "b"), test, show_progress=False)
    assert first.fit(stop_after_steps=4) == "interrupted"      # mid-way through epoch 2
    resumed = Trainer(cfg, train, str(tmp_path / "b"), test, show_progress=False)
    assert resumed.resume() and (resumed.epoch, resumed.step) == (1, 1)
    assert resumed.fit() == "complete"

    a, b = _params(straight), _params(resumed)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=0, atol=1e-6, err_msg=key)
    log = [json.loads(line) for line in open(tmp_path / "b" / "log.jsonl")]
    assert [r["epoch"] for r in log] == [1, 2]
    assert "RANDOM FEATURE-LOSS WEIGHTS (VGG-19)" in log[0]["marks"]
    assert os.path.exists(tmp_path / "b" / "grids" / "epoch_002.png")
    assert os.path.exists(tmp_path / "b" / "weights" / "net_g_epoch002.params")


def test_no_adversarial_never_trains_d(prepared_dir, tmp_path):
    cfg = tiny_config("loss.adversarial_weight=0", "train.max_steps_per_epoch=2")
    trainer = Trainer(cfg, os.path.join(prepared_dir, "train.h5"), str(tmp_path), show_progress=False)
    before = _snapshot(trainer.nets["net_d"])
    trainer.fit()
    assert _changed(before, trainer.nets["net_d"]) == []
    log = json.loads(open(tmp_path / "log.jsonl").readline())
    assert "d" not in log["train"] and "adversarial" not in log["train"]


def test_resume_rejects_other_configs_and_corrupt_checkpoints(prepared_dir, tmp_path):
    train = os.path.join(prepared_dir, "train.h5")
    cfg = tiny_config("train.max_steps_per_epoch=1")
    Trainer(cfg, train, str(tmp_path), show_progress=False).fit()
    other = Trainer(tiny_config("train.max_steps_per_epoch=1", "train.lr=0.1"), train, str(tmp_path),
                    show_progress=False)
    with pytest.raises(CheckpointError, match=r"train.lr: checkpoint 0.0002 vs now 0.1"):
        other.resume()
    state = tmp_path / "checkpoints" / "ckpt-000001" / "state.json"
    state.write_text("{not json")
    with pytest.raises(CheckpointError, match="state.json is corrupt"):
        Trainer(cfg, train, str(tmp_path), show_progress=False).resume()
    os.remove(state)
    with pytest.raises(CheckpointError, match=r"incomplete: missing \['state.json'\]"):
        Trainer(cfg, train, str(tmp_path), show_progress=False).resume()


def test_one_roi_training_step_survives_mkldnn():
    """5 RFSimage channels + 3 image channels = 8: MXNet 1.9.1's MKLDNN concat backward used to die
    with SIGFPE here (the process would crash, failing this test loudly); and what it computes
    must agree with the imperative steps."""
    x = mx.nd.random.uniform(shape=(4, 5, 32, 32))
    y = mx.nd.random.uniform(shape=(4, 3, 32, 32))
    runs = {}
    for hybrid in (True, False):
        g, d, tg, td = _nets(in_channels=5)          # the same initial weights (seeded)
        if hybrid:
            for net in (g, d):
                net.hybridize(static_alloc=True)
        history = HistoryBuffer(4, seed=0)
        losses = []
        for _ in range(2):
            losses.append(update_discriminator(g, d, td, history, x, y))
            losses.append(update_generator(g, d, tg, None, x, y,
                                           LossConfig(feature_weight=0))["total"])
        runs[hybrid] = losses, _snapshot(g), _snapshot(d)
    # the hybridized (MKLDNN) steps compute what the imperative ones do: same losses, same
    # updated weights (so the concat backward gave the right gradients, not just no crash)
    (h_loss, h_g, h_d), (i_loss, i_g, i_d) = runs[True], runs[False]
    np.testing.assert_allclose(h_loss, i_loss, rtol=1e-4)
    for hybrid_net, imperative_net in ((h_g, i_g), (h_d, i_d)):
        for (name, a), b in zip(sorted(hybrid_net.items()), (v for _, v in sorted(imperative_net.items()))):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5, err_msg=name)


def test_learning_rate_decays_linearly_over_the_last_epochs(prepared_dir, tmp_path):
    """train.lr_decay_epochs=2 of 4 epochs at lr 0.01: 0.01, 0.01, then 2/3 and 1/3 of it (the
    schedule written out by hand), and the rate each epoch trained with is the one logged."""
    from brain2pix_gluon.training.trainer import epoch_learning_rate

    cfg = tiny_config("train.epochs=4", "train.lr=0.01", "train.lr_decay_epochs=2",
                      "train.max_steps_per_epoch=1", "loss.feature_weight=0",
                      "loss.adversarial_weight=0")
    expected = [0.01, 0.01, 0.01 * 2 / 3, 0.01 / 3]
    np.testing.assert_allclose([epoch_learning_rate(cfg.train, e) for e in range(4)], expected)
    # no decay: the paper's constant rate
    paper = tiny_config("train.epochs=4", "train.lr=0.01")
    assert [epoch_learning_rate(paper.train, e) for e in range(4)] == [0.01] * 4
    Trainer(cfg, os.path.join(prepared_dir, "train.h5"), str(tmp_path), show_progress=False).fit()
    log = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    np.testing.assert_allclose([r["lr"] for r in log], expected)


def test_learned_rf_weight_decay_shrinks_only_the_maps(prepared_dir, tmp_path):
    """model.learned_rf_weight_decay adds decay * w to the maps' gradient only. With a decay that
    dwarfs the gradient, Adam's first step (bias-corrected: lr * sign of the gradient) moves every
    map weight by lr towards 0 (written out by hand below), and the U-Net takes the very same step
    as without decay."""
    lr = 1e-3
    settings = ["model.variant=learned_rf", "train.epochs=1", "train.max_steps_per_epoch=1",
                f"train.lr={lr}", "loss.feature_weight=0", "loss.adversarial_weight=0"]
    after, before = {}, {}
    for decay in (0.0, 1e4):
        cfg = tiny_config(*settings, f"model.learned_rf_weight_decay={decay}")
        trainer = Trainer(cfg, os.path.join(prepared_dir, "train.h5"), str(tmp_path / str(decay)),
                          show_progress=False)
        maps = {k: v for k, v in trainer.nets["learned_rf"].collect_params().items()
                if k.endswith("weight")}
        before[decay] = {k: v.data().asnumpy().copy() for k, v in maps.items()}
        trainer.fit()
        after[decay] = {"maps": {k: v.data().asnumpy() for k, v in maps.items()},
                        "unet": {k: v.data().asnumpy()
                                 for k, v in trainer.nets["net_g"].collect_params().items()}}
    for k, w0 in before[1e4].items():
        w1 = after[1e4]["maps"][k]
        big = np.abs(w0) > 10 * lr
        assert big.mean() > 0.5
        np.testing.assert_allclose(w1[big], w0[big] - lr * np.sign(w0[big]), rtol=0, atol=1e-6)
        # without decay the maps follow their gradient instead
        assert np.abs(after[0.0]["maps"][k][big] - w1[big]).max() > lr / 2
    for k, w in after[0.0]["unet"].items():
        np.testing.assert_array_equal(after[1e4]["unet"][k], w, err_msg=k)
