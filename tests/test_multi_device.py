"""Data parallel on two CPU contexts: the path ``--gpus 0,1`` takes, without GPUs.

``split_and_load`` gives each context half the batch, each computes its batch-mean losses, and
``trainer.step(n_devices)`` averages the per-device gradients over the kvstore. Where no statistic
couples the samples of a batch (BatchNorm using its running statistics) that is the same update
as one context on the whole batch, so the two must agree; with batch statistics it differs
(each half normalises itself), and there the test only shows that it trains and that the
replicas stay identical.
"""

import json
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from brain2pix_gluon.config import LossConfig
from brain2pix_gluon.model_zoo import get_model, initialize_paper
from brain2pix_gluon.training import HistoryBuffer, update_discriminator, update_generator
from brain2pix_gluon.training.trainer import Trainer

from conftest import tiny_config

TWO = [mx.cpu(0), mx.cpu(1)]


def _running_statistics_only(block):
    """Make every BatchNorm of ``block`` normalise with its running statistics, even in training."""
    if isinstance(block, gluon.nn.BatchNorm):
        block._kwargs["use_global_stats"] = True
    for child in block._children.values():
        _running_statistics_only(child)


def _setup(ctx):
    mx.random.seed(7)
    g = get_model("unet_generator", in_channels=4, ngf=16, prefix="net_g_")
    d = get_model("patch_discriminator", in_channels=7, ndf=8, prefix="net_d_")
    for net in (g, d):
        _running_statistics_only(net)
        initialize_paper(net, ctx=ctx)
        net.hybridize(static_alloc=True)
    opt = {"learning_rate": 0.05}
    return g, d, gluon.Trainer(g.collect_params(), "sgd", opt), \
        gluon.Trainer(d.collect_params(), "sgd", opt)


def _feature(images):
    return mx.nd.Pooling(images, kernel=(4, 4), stride=(4, 4), pool_type="avg")


def _train(ctx, batches):
    g, d, tg, td = _setup(ctx)
    history = HistoryBuffer(capacity=3, swap_prob=1.0, seed=2)
    losses = []
    for x, y in batches:
        xs = gluon.utils.split_and_load(x, ctx)
        ys = gluon.utils.split_and_load(y, ctx)
        loss_d = update_discriminator(g, d, td, history, xs, ys)
        out = update_generator(g, d, tg, _feature, xs, ys, LossConfig())
        losses.append((loss_d, out["total"], out["feature"]))
    return g, d, history, losses


def test_two_contexts_equal_one_where_no_batch_statistic_couples_the_samples(rng):
    batches = [(mx.nd.array(rng.random((4, 4, 32, 32), np.float32)),
                mx.nd.array(rng.random((4, 3, 32, 32), np.float32))) for _ in range(3)]
    g1, d1, h1, losses1 = _train([mx.cpu(0)], batches)
    g2, d2, h2, losses2 = _train(TWO, batches)
    np.testing.assert_allclose(losses2, losses1, rtol=1e-5)
    for net1, net2 in ((g1, g2), (d1, d2)):
        for name, p1 in net1.collect_params().items():
            p2 = net2.collect_params()[name]
            one = p1.data().asnumpy()
            replicas = [p2.data(c).asnumpy() for c in TWO]
            np.testing.assert_array_equal(replicas[0], replicas[1], err_msg=name)
            np.testing.assert_allclose(replicas[0], one, rtol=1e-4, atol=1e-6, err_msg=name)
    # the history buffer held samples made on both contexts and handed them across: 3 iterations
    # of 4 samples into 3 slots with swap probability 1 moved every slot at least once
    assert {s.context for s in h2.samples} == set(TWO)
    for s1, s2 in zip(h1.samples, h2.samples):
        np.testing.assert_allclose(s2.asnumpy(), s1.asnumpy(), rtol=1e-5, atol=1e-6)


def test_trainer_on_two_contexts_trains_and_keeps_the_replicas_identical(prepared_dir, tmp_path):
    cfg = tiny_config("train.max_steps_per_epoch=3", "train.history_capacity=5",
                      "train.grid_samples=2", "name=two_contexts")
    trainer = Trainer(cfg, os.path.join(prepared_dir, "train.h5"), str(tmp_path),
                      os.path.join(prepared_dir, "test.h5"), ctx=TWO, show_progress=False)
    before = {k: p.data(mx.cpu(0)).asnumpy() for k, p in
              trainer.nets["net_g"].collect_params().items()}
    assert trainer.fit() == "complete"
    record = json.loads(open(tmp_path / "log.jsonl").readline())
    assert all(np.isfinite(v) for v in record["train"].values())
    assert set(record["train"]) == {"d", "g", "pixel", "adversarial", "feature"}
    moved = 0
    for net in ("net_g", "net_d"):
        for name, p in trainer.nets[net].collect_params().items():
            a, b = (p.data(c).asnumpy() for c in TWO)
            if p.grad_req == "null":    # BatchNorm running statistics: each device keeps its own
                continue
            np.testing.assert_array_equal(a, b, err_msg=name)
            moved += net == "net_g" and name.endswith("weight") and not np.array_equal(a, before[name])
    assert moved == 10          # every convolution of the U-Net was updated
    assert {s.context for s in trainer.history.samples} == set(TWO)


def test_history_hands_a_stored_sample_to_the_context_asking():
    history = HistoryBuffer(capacity=2, swap_prob=1.0, seed=0)
    first = history.query(mx.nd.array([[[[1.0]]], [[[2.0]]]], ctx=mx.cpu(0)))
    assert first.asnumpy().ravel().tolist() == [1.0, 2.0]     # filling: passed through
    out = history.query(mx.nd.array([[[[3.0]]], [[[4.0]]]], ctx=mx.cpu(1)))
    assert out.context == mx.cpu(1)
    # the documented rule replayed with the same generator: each new sample takes a random
    # slot and the sample stored there comes back (swap_prob = 1: always)
    rng, stored, expected = np.random.RandomState(0), [1.0, 2.0], []
    for new in (3.0, 4.0):
        assert rng.uniform() < 1.0
        slot = rng.randint(0, 2)
        expected.append(stored[slot])
        stored[slot] = new
    assert out.asnumpy().ravel().tolist() == expected
    assert [s.asnumpy().item() for s in history.samples] == stored


@pytest.mark.parametrize("argv", [["reconstruct", "RUN", "--data", "DATA", "--out", "OUT"],
                                  ["evaluate", "RECON.h5", "--out", "OUT"],
                                  ["baseline", "nishimoto", "--data", "DATA", "--out", "OUT"]])
def test_inference_commands_take_gpus(argv, capsys):
    from brain2pix_gluon.cli import main

    if mx.context.num_gpus() > 0:
        pytest.skip("this MXNet sees a GPU")
    assert main(argv + ["--gpus", "0"]) == 2
    assert "--gpus 0: this MXNet sees 0 GPU(s)" in capsys.readouterr().err


def test_kvstore_is_a_checked_config_choice_passed_to_both_optimisers(prepared_dir, tmp_path):
    from brain2pix_gluon.errors import ConfigError

    with pytest.raises(ConfigError, match="train.kvstore.*'nccl'.*'dist_sync'.*'dist_async'"):
        tiny_config("train.kvstore=dist_async")
    trainer = Trainer(tiny_config("train.kvstore=local"), os.path.join(prepared_dir, "train.h5"),
                      str(tmp_path), ctx=TWO, show_progress=False)
    for name in ("trainer_g", "trainer_d"):
        assert trainer.trainers[name]._kvstore_params["kvstore"] == "local"
