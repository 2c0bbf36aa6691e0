"""Raw data as the real release (and a neuroimaging user) hands it over, prepared end to end."""

import csv
import json
import logging
import os
import shutil

import numpy as np
import pytest

from brain2pix_gluon.io.matlab import read_mat
from brain2pix_gluon.io.prepared import open_prepared
from brain2pix_gluon.preprocessing.prepare import prepare_dataset

from conftest import tiny_config


def _arrays(path):
    with open_prepared(path) as f:
        return {k: f[k][()] for k in ("rf_images", "frames", "samples", "voxels/V1", "rf_centres/V2")}


def _assert_same_prepared(a, b):
    for split in ("train", "test"):
        x, y = _arrays(os.path.join(a, f"{split}.h5")), _arrays(os.path.join(b, f"{split}.h5"))
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=f"{split} {key}")


def test_matlab_v73_files_prepare_like_v5(prepared_dir, tmp_path):
    from brain2pix_gluon.data.simulation import simulate_dataset

    config = tiny_config("simulation.mat_version=7.3")
    raw = str(tmp_path / "raw73")
    simulate_dataset(raw, config.simulation, config.data, show_progress=False)
    with open(os.path.join(raw, "roimask.mat"), "rb") as handle:
        assert handle.read(19) == b"MATLAB 7.3 MAT-file"
    out = str(tmp_path / "prep73")
    prepare_dataset(raw, out, config, show_progress=False)
    # same seed, same data: only the MATLAB format differs, so the prepared arrays are identical
    _assert_same_prepared(prepared_dir, out)


def test_nifti_runs_masks_folder_and_csv_centres(raw_dir, prepared_dir, config, tmp_path):
    import nibabel

    raw = tmp_path / "nifti"
    (raw / "masks").mkdir(parents=True)
    masks = read_mat(os.path.join(raw_dir, "roimask.mat"))
    keys = ("V1d", "V1v", "V2d", "V2v", "V3d", "V3v")
    n_brain = masks["V1d"].size
    shape = (4, 5, n_brain // 20)          # a 3-D brain, flattened in C order like the runs
    assert int(np.prod(shape)) == n_brain
    affine = np.eye(4)
    for key in keys:
        volume = masks[key].reshape(shape).astype(np.uint8)
        nibabel.save(nibabel.Nifti1Image(volume, affine), str(raw / "masks" / f"{key}.nii.gz"))
    x, y = read_mat(os.path.join(raw_dir, "col_centers_112px.mat")), \
        read_mat(os.path.join(raw_dir, "row_centers_112px.mat"))
    with open(raw / "rf_centres.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["mask", "col", "row"])
        for key in keys:
            for col, row in zip(x[key].ravel(), y[key].ravel()):
                writer.writerow([key, "" if np.isnan(col) else repr(col), "" if np.isnan(row) else repr(row)])
    for split in ("train", "test"):
        (raw / split).mkdir()
        for name in sorted(os.listdir(os.path.join(raw_dir, split))):
            src = os.path.join(raw_dir, split, name)
            if name.endswith(".npy"):
                run = np.load(src)                                  # (time, voxels)
                volume = np.moveaxis(run.reshape((run.shape[0],) + shape), 0, -1)
                nibabel.save(nibabel.Nifti1Image(volume, affine),
                             str(raw / split / name.replace(".npy", ".nii.gz")))
            else:
                shutil.copy(src, raw / split / name)
    out = str(tmp_path / "prep")
    prepare_dataset(str(raw), out, config, show_progress=False)
    _assert_same_prepared(prepared_dir, out)


def _swap_centre_files(raw_dir, dst):
    shutil.copytree(raw_dir, dst)
    col, row = os.path.join(dst, "col_centers_112px.mat"), os.path.join(dst, "row_centers_112px.mat")
    os.replace(col, col + ".tmp")
    os.replace(row, col)
    os.replace(col + ".tmp", row)
    return dst


def test_swapped_centre_files_trigger_the_retinotopy_warning(raw_dir, prepared_dir, tmp_path,
                                                              caplog):
    raw = _swap_centre_files(raw_dir, str(tmp_path / "swapped"))
    out = str(tmp_path / "prep")
    with caplog.at_level(logging.INFO, logger="brain2pix_gluon"):
        prepare_dataset(raw, out, tiny_config(), splits=("test",), show_progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("WARNING: wrong_axis" in w and "set data.rf_swap_axes=true" in w for w in warnings)
    with open_prepared(os.path.join(out, "test.h5")) as f:
        record = json.loads(f.attrs["retinotopy"])
    assert record["verdict"] == "wrong_axis" and record["rois"]["V1"]["verdict"] == "wrong_axis"
    # the setting the warning names gives back the original data
    fixed = str(tmp_path / "fixed")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="brain2pix_gluon"):
        prepare_dataset(raw, fixed, tiny_config("data.rf_swap_axes=true"), show_progress=False)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    _assert_same_prepared(prepared_dir, fixed)
    # the per-run sample count is logged with the unused volumes
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("run_001:")]
    with np.load(os.path.join(raw_dir, "truth.npz")) as truth:
        n = int(truth["run_frames"][0])
    unused = 60 - (n - 1 + 4 + 5)
    assert lines == [f"run_001: {n} frames from {raw}/train/run_001.webm -> {n} samples; 60 "
                     f"volumes, {unused} unused after the last window ({unused * 0.7:.1f} s), "
                     f"0 frames dropped (window past the run's end)"]


def test_flipped_vertical_centres_are_reported_and_fixed(raw_dir, tmp_path, caplog):
    from brain2pix_gluon.io.matlab import write_mat

    raw = str(tmp_path / "flipped")
    shutil.copytree(raw_dir, raw)
    path = os.path.join(raw, "row_centers_112px.mat")
    rows = read_mat(path)
    write_mat(path, {k: -v - 1 / 112 for k, v in rows.items()})   # y measured upwards
    with caplog.at_level(logging.INFO, logger="brain2pix_gluon"):
        prepare_dataset(raw, str(tmp_path / "p"), tiny_config(), splits=("test",),
                        show_progress=False)
    assert any("WARNING: flipped" in r.getMessage() and "data.rf_flip_y=true" in r.getMessage()
               for r in caplog.records)
    prepare_dataset(raw, str(tmp_path / "q"), tiny_config("data.rf_flip_y=true"), splits=("test",),
                    show_progress=False)
    with open_prepared(str(tmp_path / "q" / "test.h5")) as f:
        assert json.loads(f.attrs["retinotopy"])["verdict"] == "aligned"


@pytest.mark.parametrize("layout", ["aligned", "authors_fixed_rf", "authors_learned_rf"])
def test_dataset_tensors_of_each_layout(raw_dir, tmp_path, layout):
    """Maps and targets as each layout defines them, from the raw files by direct indexing."""
    from brain2pix_gluon.data import RFSImageDataset

    out = str(tmp_path / layout)
    prepare_dataset(raw_dir, out, tiny_config(f"data.rf_layout={layout}"), splits=("test",),
                    show_progress=False)
    path = os.path.join(out, "test.h5")
    ds = RFSImageDataset(path)
    with open_prepared(path) as f:
        centres = f["rf_centres/V1"][()]
        voxels = f["voxels/V1"][()]
        frames = f["frames"][()].astype(np.float32)
        samples = f["samples"][()]
    k = 3
    rf, target = ds[k]
    size = 32
    start = samples[k, 4]
    for t in range(5):
        total, count = np.zeros((size, size)), np.zeros((size, size))
        for v, (col, row) in enumerate(centres):
            i, j = int((col + 0.5) * size), int((row + 0.5) * size)   # the authors' map[x, y]
            total[i, j] += voxels[start + t, v]
            count[i, j] += 1
        expected = np.where(count > 0, total / np.maximum(count, 1), 0.0)
        if layout == "aligned":
            expected = expected.T
        np.testing.assert_allclose(rf[t], expected, rtol=1e-5, atol=1e-5)
    upright = frames[samples[k, 3]]
    expected_target = upright.transpose(0, 2, 1) if layout == "authors_fixed_rf" else upright
    np.testing.assert_array_equal(target, expected_target)
