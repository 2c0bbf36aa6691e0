"""brain2pix doctor on the CPU path: a missing CUDA library and a missing ffmpeg are reported with
their fix, and only what a default run needs changes the exit status. No network: the download
probe is replaced."""

import pytest

from brain2pix_gluon import cuda_libraries, doctor
from brain2pix_gluon.cli import main
from brain2pix_gluon.model_zoo import pretrained


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty model cache, data home and feature cache, and a download probe that says no."""
    monkeypatch.setenv("MXNET_HOME", str(tmp_path / "mxnet"))
    monkeypatch.setenv("BRAIN2PIX_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("BRAIN2PIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pretrained, "probe_downloads",
                        lambda urls, timeout=None: {url: "offline (test)" for url in urls})
    return tmp_path


def report(**kwargs):
    lines = []
    code = doctor.run_doctor(out=lines.append, timeout=0.1, **kwargs)
    return code, lines


def line_of(lines, name):
    """The report line of a check and the fix line under it (or '')."""
    for i, line in enumerate(lines):
        if line.split()[1:2] == [name] or f" {name} " in line:
            nxt = lines[i + 1] if i + 1 < len(lines) and "fix:" in lines[i + 1] else ""
            return line, nxt
    raise AssertionError(f"no line for {name} in:\n" + "\n".join(lines))


def test_missing_ffmpeg_is_a_note_with_its_fix(offline, monkeypatch):
    monkeypatch.setattr("brain2pix_gluon.io.video.ffmpeg_executable", lambda: None)
    code, lines = report()
    line, fix = line_of(lines, "ffmpeg")
    assert line.split()[0] == "note" and "not found" in line
    assert "pip install imageio-ffmpeg" in fix
    # OpenCV decodes the videos instead, and random weights are a marked fallback: exit 0
    assert code == 0


def test_missing_cuda_library_is_named_with_its_wheel_and_fails(offline, monkeypatch):
    # a CUDA build whose preload found every library but cuDNN
    monkeypatch.setattr(cuda_libraries, "cuda_build", lambda search_path=None: ("mxnet-cu112",
                                                                               "1.9.1"))
    found = {"libcudart.so.11.0": "/site-packages/nvidia/cuda_runtime/lib/libcudart.so.11.0"}
    monkeypatch.setattr(cuda_libraries, "preload",
                        lambda search_path=None, force=False:
                        (found, {"libcudnn.so.8": "nvidia-cudnn-cu11"}))
    code, lines = report()
    line, fix = line_of(lines, "libcudnn.so.8")
    assert line.split()[0] == "MISSING" and "nvidia-cudnn-cu11" in line
    assert '.[cu112]' in fix
    assert line_of(lines, "libcudart.so.11.0")[0].split()[0] == "ok"
    assert code == 1 and "libcudnn.so.8" in lines[-1]


def test_preload_reports_the_library_it_cannot_find(tmp_path, monkeypatch):
    # one wheel folder present, the others absent: found by path vs missing, with a warning
    monkeypatch.setattr(cuda_libraries, "_state", {"done": False, "found": {}, "missing": {}})
    lib = tmp_path / "nvidia" / "nvtx" / "lib"
    lib.mkdir(parents=True)
    (lib / "libnvToolsExt.so.1").write_bytes(b"not a library")
    path = cuda_libraries.find_library(cuda_libraries.LIBRARIES[7], [str(tmp_path)])
    assert path == str(lib / "libnvToolsExt.so.1")
    assert cuda_libraries.find_library(cuda_libraries.LIBRARIES[0], [str(tmp_path)]) is None
    with pytest.warns(RuntimeWarning, match=r"libcudnn\.so\.8 \(wheel nvidia-cudnn-cu11\)"):
        found, missing = cuda_libraries.preload([str(tmp_path)], force=True)
    assert missing["libcudnn.so.8"] == "nvidia-cudnn-cu11"
    assert "libnvToolsExt.so.1" in missing      # found on disk but not loadable: still missing
    assert found == {}


def test_cuda_build_is_read_from_the_wheel_metadata(tmp_path):
    assert cuda_libraries.cuda_build([str(tmp_path)]) is None
    (tmp_path / "mxnet-1.9.1.dist-info").mkdir()
    assert cuda_libraries.cuda_build([str(tmp_path)]) is None      # the CPU build
    (tmp_path / "mxnet_cu112-1.9.1.dist-info").mkdir()
    assert cuda_libraries.cuda_build([str(tmp_path)]) == ("mxnet-cu112", "1.9.1")


def test_cached_weights_and_cpu_flags_are_reported(offline, tmp_path):
    models = tmp_path / "mxnet" / "models"
    models.mkdir(parents=True)
    (models / "vgg19-ad2f660d.params").write_bytes(b"")
    checks = {c.name: c for c in doctor.check_pretrained(timeout=0.1)}
    assert checks["VGG-19"].status == "ok" and "cached" in checks["VGG-19"].detail
    assert checks["C3D"].status == "note" and "c3d_kinetics400" in checks["C3D"].fix
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx fma\n")
    cpu, = doctor.check_cpu(str(cpuinfo))
    assert cpu.status == "note" and "sse4_2 avx fma" in cpu.detail and "avx2" in cpu.detail


def test_cli_doctor_exit_status(offline, monkeypatch, capsys):
    assert main(["doctor"]) == 0
    monkeypatch.setattr(doctor, "check_ffmpeg", lambda: [doctor.Check(
        "ffmpeg", "ffmpeg", "MISSING", "faked", "fix it")])
    assert main(["doctor"]) == 1
    assert "MISSING for a default run: ffmpeg" in capsys.readouterr().out


def test_a_check_that_needs_a_broken_mxnet_is_reported_not_raised(offline, monkeypatch):
    # a CUDA build without a driver: everything that imports mxnet raises OSError(libcuda.so.1)
    def broken(*args, **kwargs):
        raise OSError("libcuda.so.1: cannot open shared object file")

    monkeypatch.setattr(doctor, "check_pretrained", broken)
    code, lines = report()
    line, fix = line_of(lines, "not checked")
    assert "libcuda.so.1" in line and "MXNet import" in fix
    assert lines[-1].startswith("Nothing a default run needs is missing")   # it is a note
