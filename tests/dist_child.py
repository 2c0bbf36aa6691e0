"""A few training steps of the tiny FixedRF, as one process or as one worker of ``launch``.

Usage: ``python tests/dist_child.py PREPARED OUT BATCHNORM [section.key=value ...]``

* ``BATCHNORM``: ``running`` makes every BatchNorm normalise with its running statistics (no
  statistic then couples the samples of a batch), ``batch`` leaves them as they train;
* started by ``launch`` (``DMLC_ROLE=worker``) it trains with ``train.kvstore=dist_sync``, and a
  worker of rank > 0 first moves its parameters (running statistics included) by random
  amounts, so that only the initial pull of rank 0's can make the workers agree;
* with ``B2P_DISAGREE=FILE``, the second worker to start trains on 90 % of the data;
* afterwards it writes its trainable parameters to ``OUT/rank<R>.npz`` (``OUT/single.npz`` for
  one process): the test, not the library, writes these.
"""

import os
import sys

import mxnet as mx
import numpy as np
from mxnet import gluon

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import tiny_config  # noqa: E402

from brain2pix_gluon.training.distributed import in_launched_worker  # noqa: E402
from brain2pix_gluon.training.trainer import Trainer  # noqa: E402


def running_statistics_only(block):
    """Every BatchNorm of ``block`` normalises with its running statistics, even in training."""
    if isinstance(block, gluon.nn.BatchNorm):
        block._kwargs["use_global_stats"] = True
    for child in block._children.values():
        running_statistics_only(child)


def main(prepared, out, batchnorm, *overrides):
    launched = in_launched_worker()
    if os.environ.get("B2P_DISAGREE"):
        # the first worker to get here keeps the settings, the other trains on 90 % of the data
        try:
            os.close(os.open(os.environ["B2P_DISAGREE"], os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            overrides += ("train.train_fraction=0.9",)
    config = tiny_config(*overrides, *(["train.kvstore=dist_sync"] if launched else []))
    trainer = Trainer(config, os.path.join(prepared, "train.h5"), os.path.join(out, "run"),
                      os.path.join(prepared, "test.h5"), show_progress=False)
    if batchnorm == "running":
        for name in ("net_g", "net_d"):
            running_statistics_only(trainer.nets[name])
    rank = trainer.dist.rank if launched else None
    if rank:
        rng = np.random.default_rng(100 + rank)
        for net in (trainer.nets["net_g"], trainer.nets["net_d"]):
            for name, param in net.collect_params().items():
                value = param.data().asnumpy()
                if name.endswith("running_var"):
                    value = value * rng.uniform(0.5, 1.5, value.shape)
                else:
                    value = value + rng.normal(0, 0.02, value.shape)
                param.set_data(mx.nd.array(value))
    assert trainer.fit() == "complete"
    arrays = {name: param.data().asnumpy() for net in ("net_g", "net_d")
              for name, param in trainer.nets[net].collect_params().items()}
    np.savez(os.path.join(out, "single.npz" if rank is None else f"rank{rank}.npz"), **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:])
