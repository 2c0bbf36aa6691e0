"""MATLAB v5 and v7.3 files: one reader, one writer, the same arrays from both formats."""

import h5py
import numpy as np
import pytest

from brain2pix_gluon.errors import DataError
from brain2pix_gluon.io.matlab import mat_version, read_mat, write_mat


def test_v73_is_hdf5_with_matlab_header_and_column_major_arrays(tmp_path):
    path = str(tmp_path / "a.mat")
    a = np.arange(6, dtype=float).reshape(2, 3)  # MATLAB 2 x 3: [0 1 2; 3 4 5]
    write_mat(path, {"a": a, "m": np.array([True, False, True])}, version="7.3")
    with open(path, "rb") as handle:
        head = handle.read(128)
    assert head.startswith(b"MATLAB 7.3 MAT-file")
    assert head[126:128] == b"IM"
    with h5py.File(path, "r") as handle:
        assert handle.userblock_size == 512
        # column-major: the dataset as h5py sees it is MATLAB's array transposed
        np.testing.assert_array_equal(handle["a"][()], [[0, 3], [1, 4], [2, 5]])
        assert handle["m"].attrs["MATLAB_class"] == b"logical"
        assert handle["m"].shape == (3, 1)
    assert mat_version(path) == "7.3"


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_round_trip_gives_matlab_shapes(tmp_path, version):
    path = str(tmp_path / "b.mat")
    a = np.arange(6, dtype=float).reshape(2, 3)
    write_mat(path, {"a": a, "v": np.array([1.5, np.nan]), "m": np.array([0, 1], bool)}, version)
    out = read_mat(path)
    assert sorted(out) == ["a", "m", "v"]
    np.testing.assert_array_equal(out["a"], a)
    np.testing.assert_array_equal(out["v"], [[1.5, np.nan]])  # a row vector, 1 x N
    assert out["m"].tolist() == [[False, True]]  # scipy gives v5 logicals back as uint8
    assert mat_version(path) == version


def test_v73_written_by_hand_like_matlab_is_transposed_on_read(tmp_path):
    # a file laid out as MATLAB writes it, built without write_mat: a 3 x 2 MATLAB array
    path = str(tmp_path / "h.mat")
    with h5py.File(path, "w", userblock_size=512) as handle:
        handle.create_dataset("x", data=np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
        handle["x"].attrs["MATLAB_class"] = np.bytes_("double")
    np.testing.assert_array_equal(read_mat(path)["x"], [[1, 4], [2, 5], [3, 6]])


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "junk.mat"
    bad.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataError, match=r"junk.mat.*could not be read"):
        read_mat(str(bad))
    with pytest.raises(DataError, match=r"nothere.mat does not exist"):
        read_mat(str(tmp_path / "nothere.mat"))
    with pytest.raises(DataError, match=r"version expected one of \['5', '7.3'\], got '6'"):
        write_mat(str(tmp_path / "c.mat"), {"a": np.zeros(2)}, version="6")
    with pytest.raises(DataError, match=r"variable 'a': expected a numeric"):
        write_mat(str(tmp_path / "c.mat"), {"a": np.array(["x"])}, version="7.3")
    assert not list(tmp_path.glob("c.mat*"))
