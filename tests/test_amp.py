"""Loss scaling driven on CPU: MXNet AMP's own LossScaler and scale_loss, without amp.init()'s fp16 casts.

``amp.init_trainer`` refuses to run before ``amp.init()``, which would cast operators to float16
(GPU only), so the stand-in below attaches exactly what ``init_trainer`` attaches (MXNet's
``LossScaler`` and the trainer's original gradient scale) and forwards ``scale_loss`` to MXNet's.
Everything else (the scaling, the unscaling inside ``Trainer.step``, the overflow skip) is MXNet's.
"""

import json
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon
from mxnet.contrib import amp as mx_amp
from mxnet.contrib.amp.loss_scaler import LossScaler

from brain2pix_gluon.config import LossConfig
from brain2pix_gluon.errors import CheckpointError
from brain2pix_gluon.model_zoo import get_model, initialize_paper
from brain2pix_gluon.training import HistoryBuffer, update_discriminator, update_generator
from brain2pix_gluon.training.amp import DynamicLossScaling, FullPrecision, loss_scaling
from brain2pix_gluon.training.checkpoint import find_checkpoint


class CpuAmp:
    """``init_trainer`` as MXNet's (without its amp.init() guard); MXNet's ``scale_loss``."""

    @staticmethod
    def init_trainer(trainer):
        trainer._amp_loss_scaler = LossScaler()
        trainer._amp_original_scale = trainer._scale

    scale_loss = staticmethod(mx_amp.scale_loss)


def _linear(w0):
    net = gluon.nn.Dense(1, use_bias=False, in_units=len(w0))
    net.initialize(mx.init.Constant(mx.nd.array([w0])))
    return net


def _quadratic_loss(net, x):
    with mx.autograd.record():
        return [mx.nd.mean(mx.nd.square(net(mx.nd.array(x))))]


def test_loss_is_scaled_before_backward_and_gradients_unscaled_before_the_update():
    w0 = np.array([0.5, -1.0, 2.0], np.float32)
    x = np.array([[1, 2, 3], [-1, 0.5, 2]], np.float32)
    net = _linear(w0)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    scaler = DynamicLossScaling(trainer, amp=CpuAmp)
    assert scaler.loss_scale == 2.0 ** 16
    # hand computation: L = mean_i (x_i . w)^2, dL/dw = 2/N sum_i (x_i . w) x_i
    grad = 2.0 / len(x) * ((x @ w0)[:, None] * x).sum(axis=0)
    scaler.backward(_quadratic_loss(net, x))
    np.testing.assert_allclose(net.weight.grad().asnumpy()[0], 2.0 ** 16 * grad, rtol=1e-6)
    scaler.step(1)
    np.testing.assert_allclose(net.weight.data().asnumpy()[0], w0 - 0.1 * grad, rtol=1e-6)


def test_an_overflowing_gradient_skips_the_update_and_halves_the_scale():
    w0 = np.array([1.0, 1.0], np.float32)
    net = _linear(w0)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    scaler = DynamicLossScaling(trainer, amp=CpuAmp)
    # gradient 2 * 1e34 * 2**16 overflows float32 (max 3.4e38)
    scaler.backward(_quadratic_loss(net, np.array([[1e17, 0.0]], np.float32)))
    scaler.step(1)
    np.testing.assert_array_equal(net.weight.data().asnumpy()[0], w0)
    assert scaler.state()["next_loss_scale"] == 2.0 ** 15


def test_scaler_state_survives_a_json_round_trip():
    net = _linear(np.ones(2, np.float32))
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    scaler = DynamicLossScaling(trainer, amp=CpuAmp)
    for value in (1e17, 1.0, 1e17):          # overflow, clean, overflow: 2**16 -> 2**14 pending
        scaler.backward(_quadratic_loss(net, np.array([[value, 0.0]], np.float32)))
        scaler.step(1)
    saved = json.loads(json.dumps(scaler.state()))
    assert saved["loss_scale"] == 2.0 ** 15 and saved["next_loss_scale"] == 2.0 ** 14
    other_net = _linear(np.ones(2, np.float32))
    other = DynamicLossScaling(gluon.Trainer(other_net.collect_params(), "sgd",
                                             {"learning_rate": 0.1}), amp=CpuAmp)
    assert other.state() != saved
    other.load_state(saved)
    assert other.state() == saved
    with pytest.raises(CheckpointError, match="unskipped"):
        other.load_state({"loss_scale": 1.0})
    with pytest.raises(CheckpointError, match="train.amp"):
        FullPrecision(trainer).load_state(saved)


class _Recorder:
    """Dynamic loss scaling that keeps a copy of every gradient right after backward."""

    def __init__(self, trainer):
        self.inner, self.trainer, self.grads = DynamicLossScaling(trainer, amp=CpuAmp), trainer, None

    def backward(self, losses):
        self.inner.backward(losses)
        self.grads = {p.name: p.grad().asnumpy().copy() for p in self.trainer._params
                      if p.grad_req != "null"}

    def step(self, n):
        self.inner.step(n)


def _setup(seed=0):
    mx.random.seed(seed)
    g = initialize_paper(get_model("unet_generator", in_channels=5, ngf=16, prefix="net_g_"), ctx=[mx.cpu()])
    d = initialize_paper(get_model("patch_discriminator", in_channels=8, ndf=8, prefix="net_d_"), ctx=[mx.cpu()])
    rf = initialize_paper(get_model("learned_rf", n_voxels=(6,), n_trs=5, size=32, prefix="learned_rf_"),
                          ctx=[mx.cpu()])
    params = g.collect_params()
    params.update(rf.collect_params())
    tg = gluon.Trainer(params, "sgd", {"learning_rate": 0.01})
    td = gluon.Trainer(d.collect_params(), "sgd", {"learning_rate": 0.01})
    return g, d, rf, tg, td


def test_both_gan_updates_and_the_learned_rf_go_through_the_scaling(rng):
    x = mx.nd.array(rng.random((2, 5, 32, 32), np.float32))
    y = mx.nd.array(rng.random((2, 3, 32, 32), np.float32))
    v = mx.nd.array(rng.standard_normal((2, 5, 6)).astype(np.float32))
    cfg = LossConfig(feature_weight=0.0)
    grads = {}
    for kind in ("fp32", "amp"):
        g, d, rf, tg, td = _setup()
        sd, sg = (_Recorder(td), _Recorder(tg)) if kind == "amp" else (None, None)
        update_discriminator(g, d, td, HistoryBuffer(0), x, y, v, rf, scaler=sd)
        d_grads = sd.grads if sd else {p.name: p.grad().asnumpy().copy()
                                       for p in td._params if p.grad_req != "null"}
        update_generator(g, d, tg, None, x, y, cfg, v, rf, scaler=sg)
        g_grads = sg.grads if sg else {p.name: p.grad().asnumpy().copy()
                                       for p in tg._params if p.grad_req != "null"}
        grads[kind] = (d_grads, g_grads)
    for fp32, scaled in zip(grads["fp32"], grads["amp"]):
        assert fp32.keys() == scaled.keys()
        for name in fp32:   # the scale is a power of two: scaling is exact in float32
            np.testing.assert_allclose(scaled[name], 2.0 ** 16 * fp32[name], rtol=1e-5,
                                       atol=1e-30, err_msg=name)
    assert any(name.startswith("learned_rf") for name in grads["amp"][1])


def test_fp32_is_plain_backward_and_step():
    net = _linear(np.array([1.0, 2.0], np.float32))
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
    scaler = loss_scaling(trainer, amp=False)
    assert isinstance(scaler, FullPrecision) and scaler.state() == {}
    scaler.backward(_quadratic_loss(net, np.array([[1.0, 1.0]], np.float32)))
    # L = (w1 + w2)^2 = 9, dL/dw = 2 * 3 * (1, 1)
    np.testing.assert_allclose(net.weight.grad().asnumpy()[0], [6.0, 6.0])
    scaler.step(1)
    np.testing.assert_allclose(net.weight.data().asnumpy()[0], [-2.0, -1.0])


def test_amp_without_a_gpu_is_a_clear_error(prepared_dir, tmp_path):
    from brain2pix_gluon.errors import ConfigError
    from brain2pix_gluon.training.trainer import Trainer

    from conftest import tiny_config

    with pytest.raises(ConfigError, match="train.amp.*GPU"):
        Trainer(tiny_config("train.amp=true"), f"{prepared_dir}/train.h5", str(tmp_path))


def test_checkpoints_keep_the_loss_scale(prepared_dir, tmp_path):
    from brain2pix_gluon.training.trainer import Trainer

    from conftest import tiny_config

    cfg = tiny_config("train.max_steps_per_epoch=2", "train.grid_samples=1")
    train = f"{prepared_dir}/train.h5"

    def amp_trainer():
        trainer = Trainer(cfg, train, str(tmp_path), show_progress=False)
        trainer.scalers = {k: DynamicLossScaling(t, amp=CpuAmp) for k, t in trainer.trainers.items()}
        return trainer

    first = amp_trainer()
    first.scalers["trainer_g"].load_state({"loss_scale": 1024.0, "next_loss_scale": 512.0,
                                           "max_loss_scale": 2.0 ** 24, "scale_seq_len": 2000,
                                           "unskipped": 7})
    assert first.fit(stop_after_steps=1) == "interrupted"
    # the step ran at S = 1024 and found no overflow: S takes the pending 512, 8 clean steps
    expected_g = {"loss_scale": 512.0, "next_loss_scale": 512.0, "max_loss_scale": 2.0 ** 24,
                  "scale_seq_len": 2000, "unskipped": 8}
    saved = json.loads(open(os.path.join(find_checkpoint(str(tmp_path))[0], "state.json")).read())
    assert saved["loss_scaling"]["trainer_g"] == expected_g
    assert saved["loss_scaling"]["trainer_d"]["unskipped"] == 1
    resumed = amp_trainer()
    assert resumed.scalers["trainer_g"].state() != expected_g
    assert resumed.resume()
    assert resumed.scalers["trainer_g"].state() == expected_g
    assert resumed.scalers["trainer_d"].state() == saved["loss_scaling"]["trainer_d"]
