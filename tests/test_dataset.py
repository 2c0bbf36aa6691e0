import os

import h5py
import numpy as np
import pytest
from mxnet import gluon

from brain2pix_gluon.data import EpochSampler, RFSImageDataset
from brain2pix_gluon.errors import DataError


@pytest.fixture(scope="module")
def train_path(prepared_dir):
    return os.path.join(prepared_dir, "train.h5")


def test_rf_mode_channels_are_roi_major_stacks_of_5_trs(train_path):
    ds = RFSImageDataset(train_path)
    rf, target = ds[7]
    assert rf.shape == (15, 32, 32) and target.shape == (3, 32, 32)
    assert rf.dtype == np.float32 and target.dtype == np.float32
    with h5py.File(train_path, "r") as f:
        vrow = f["samples"][7, 4]
        stack = f["rf_images"][vrow:vrow + 5]
        frow = f["samples"][7, 3]
        np.testing.assert_allclose(target, f["frames"][frow].astype(np.float32))
    np.testing.assert_array_equal(rf[0:5], stack[:, 0])    # V1, TR 0..4
    np.testing.assert_array_equal(rf[10:15], stack[:, 2])  # V3
    assert ds.in_channels == 15


def test_roi_subset_fraction_and_modes(train_path):
    full = RFSImageDataset(train_path)
    v1 = RFSImageDataset(train_path, rois=["V1"], fraction=0.2)
    assert v1.in_channels == 5 and len(v1) == round(0.2 * len(full))
    np.testing.assert_array_equal(v1[3][0], full[3][0][:5])
    v23 = RFSImageDataset(train_path, rois=["V2", "V3"], mode="voxels", in_memory=False)
    rf, voxels, target = v23[2]
    assert rf.shape == (10, 32, 32) and voxels.shape == (5, sum(v23.n_voxels))
    np.testing.assert_array_equal(rf, full[2][0][5:])
    syn = RFSImageDataset(train_path, mode="synthetic")
    inputs, target = syn[4]
    assert inputs.shape == (3, 32, 32)
    np.testing.assert_allclose(inputs[1], syn.rf_masks[1] * target.sum(0))
    assert np.count_nonzero(inputs[0]) <= syn.rf_masks[0].sum()
    with pytest.raises(DataError, match="'V4' is not in"):
        RFSImageDataset(train_path, rois=["V4"])
    with pytest.raises(DataError, match="fraction"):
        RFSImageDataset(train_path, fraction=1.5)


def test_works_with_worker_processes(train_path):
    ds = RFSImageDataset(train_path, mode="voxels", in_memory=False)
    loader = gluon.data.DataLoader(ds, batch_size=8, num_workers=2, last_batch="discard")
    batches = list(loader)
    assert len(batches) == len(ds) // 8
    rf, voxels, target = batches[0]
    assert rf.shape == (8, 15, 32, 32) and target.shape == (8, 3, 32, 32)
    np.testing.assert_array_equal(rf.asnumpy()[3], ds[3][0])


def test_epoch_sampler_depends_only_on_seed_and_epoch():
    a = list(EpochSampler(50, seed=3, epoch=2))
    assert sorted(a) == list(range(50))
    assert a == list(EpochSampler(50, seed=3, epoch=2))
    assert a != list(EpochSampler(50, seed=3, epoch=1))
    assert list(EpochSampler(50, seed=3, epoch=2, skip=20)) == a[20:]
    assert list(EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]
