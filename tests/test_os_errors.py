"""Operating-system errors at the edges: a message with the path and the cause, no traceback."""

import errno
import os
import shutil
from collections import namedtuple

import numpy as np

from brain2pix_gluon.cli import main
from brain2pix_gluon.experiments import tables as tables_module

from conftest import TINY

SIM = [o for o in TINY if o.startswith(("simulation.", "data."))]
Usage = namedtuple("Usage", "total used free")


def _assert_clean(err):
    # no traceback, and besides the log's "[brain2pix] ..." lines the error is one short message
    message = [line for line in err.splitlines() if not line.startswith("[brain2pix]")]
    assert "Traceback" not in err and len(message) <= 2, err


def test_prepare_checks_free_space_before_writing(raw_dir, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "prepared")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 << 30, 10 << 30, 5 << 20))
    code = main(["prepare", raw_dir, out, "--no-progress"] + SIM)
    err = capsys.readouterr().err
    assert code == 1
    assert f"{os.path.join(out, 'train.h5.partial')}: No space left on device: writing needs" in err
    assert "MB (uncompressed estimate) but 5.2 MB are free [ENOSPC]" in err
    _assert_clean(err)
    assert not os.path.exists(out)          # nothing half-written, not even the folder it made


def test_a_run_with_zero_volumes_is_refused(raw_dir, tmp_path, capsys):
    raw = str(tmp_path / "raw")
    shutil.copytree(raw_dir, raw)
    run = os.path.join(raw, "train", sorted(n for n in os.listdir(os.path.join(raw, "train"))
                                            if n.endswith(".npy"))[0])
    np.save(run, np.load(run)[:0])
    code = main(["prepare", raw, str(tmp_path / "out"), "--no-progress"] + SIM)
    err = capsys.readouterr().err
    assert code == 2 and f"run {run}: 0 volumes (signals of shape (0, " in err
    _assert_clean(err)


def test_wrong_kinds_of_path_are_reported(prepared_dir, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(["train", "--data", prepared_dir, "--out", str(blocker), "--no-progress"]
                + TINY) == 2
    err = capsys.readouterr().err
    assert f"--out {blocker}: a file is in the way; expected a folder" in err
    _assert_clean(err)

    assert main(["train", "--config", str(tmp_path), "--data", prepared_dir,
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"config file {tmp_path} is a directory; expected a YAML file" in err
    _assert_clean(err)

    binary = tmp_path / "weights.params"
    binary.write_bytes(bytes(range(256)) * 4)
    assert main(["train", "--config", str(binary), "--data", prepared_dir,
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"config file {binary} is not a text file" in err
    _assert_clean(err)


def test_read_only_and_full_disks_while_writing_exit_1_with_path_and_cause(tmp_path, monkeypatch,
                                                                           capsys):
    results = tmp_path / "results"
    out = str(tmp_path / "tables")
    os.makedirs(results / "a")
    (results / "a" / "results.json").write_text("{}")
    real = os.makedirs

    for code, words in ((errno.EROFS, "Read-only file system [EROFS]: the file system is "
                                      "read-only"),
                        (errno.EACCES, "Permission denied [EACCES]: permission denied"),
                        (errno.ENOSPC, "No space left on device [ENOSPC]: the disk is full")):
        def refusing(path, *args, code=code, **kwargs):
            if os.fspath(path) == out:
                raise OSError(code, os.strerror(code), path)
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, "makedirs", refusing)
        monkeypatch.setattr(tables_module, "collect_results",
                            lambda d, skipped=None: {"misc": []})
        assert main(["tables", str(results), "--out", out]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"brain2pix tables: error: {out}: {words}"), err
        _assert_clean(err)


def test_ctrl_c_exits_130(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tables_module, "write_tables", interrupted)
    assert main(["tables", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "brain2pix tables: interrupted\n"
