"""The paper's eq. 4 option: LearnedRF maps added only where some voxel's RF lands."""

import os

import mxnet as mx
import numpy as np
import pytest

from brain2pix_gluon.errors import ConfigError
from brain2pix_gluon.io.prepared import open_prepared
from brain2pix_gluon.training import steps as steps_module
from brain2pix_gluon.training.trainer import Trainer

from conftest import tiny_config


def test_the_mask_reaches_every_generator_input(prepared_dir, tmp_path, monkeypatch):
    cfg = tiny_config("model.variant=learned_rf", "model.learned_rf_mask=true",
                      "train.max_steps_per_epoch=1", "train.epochs=1", "train.grid_samples=0")
    train = os.path.join(prepared_dir, "train.h5")
    trainer = Trainer(cfg, train, str(tmp_path / "run"), show_progress=False)
    # independent of the renderer: pixels whose RFSimage is ever non-zero are the covered ones
    with open_prepared(train) as handle:
        covered = np.any(handle["rf_images"][()] != 0, axis=0)        # (R, S, S)
    expected = np.repeat(covered, trainer.train_set.n_trs, axis=0)[None].astype(np.float32)
    seen = []
    real = steps_module.generator_input

    def spy(rf_images, voxels=None, learned_rf=None, mask=None, include_rf=True):
        seen.append(None if mask is None else mask.asnumpy())
        out = real(rf_images, voxels, learned_rf, mask, include_rf)
        if learned_rf is not None:   # outside the mask the input is the RFSimage itself
            outside = expected[0] == 0
            np.testing.assert_allclose(out.asnumpy()[:, outside], rf_images.asnumpy()[:, outside])
        return out

    monkeypatch.setattr(steps_module, "generator_input", spy)
    trainer.fit()
    assert len(seen) >= 2 and all(m is not None for m in seen)     # D step and G step
    np.testing.assert_array_equal(seen[0], expected)
    assert 0 < expected.mean() < 1


def test_without_the_option_the_maps_cover_every_pixel(prepared_dir, tmp_path):
    cfg = tiny_config("model.variant=learned_rf", "train.max_steps_per_epoch=1")
    trainer = Trainer(cfg, os.path.join(prepared_dir, "train.h5"), str(tmp_path / "run"),
                      show_progress=False)
    assert trainer.rf_mask is None
    with pytest.raises(ConfigError, match="model.learned_rf_mask: expected false unless"):
        tiny_config("model.learned_rf_mask=true")
