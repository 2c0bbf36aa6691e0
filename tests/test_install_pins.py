"""The GPU install's pins agree everywhere they are written: setup.py's cu112 extra,
environment-gpu.yml and the libraries cuda_libraries.py loads; environment.yml differs from
environment-gpu.yml only by the MXNet build and the CUDA wheels."""

import os
import re

from brain2pix_gluon import cuda_libraries

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pins(text):
    """name -> version of every ``name==version`` in a text (setup.py or a conda file)."""
    return dict(re.findall(r"([A-Za-z0-9_.\-]+)==([0-9][^\s\"',\]]*)", text))


def read(name):
    with open(os.path.join(ROOT, name)) as handle:
        return handle.read()


def test_cuda_pins_agree_between_setup_py_and_environment_gpu():
    setup = read("setup.py")
    cuda_block = setup[setup.index("CUDA11_LIBRARIES = ["):setup.index("EXTRAS = {")]
    cuda = pins(cuda_block)
    gpu, cpu = pins(read("environment-gpu.yml")), pins(read("environment.yml"))
    assert {lib.wheel for lib in cuda_libraries.LIBRARIES} == set(cuda)
    assert cuda["nvidia-cudnn-cu11"].startswith("8."), "libmxnet.so needs libcudnn.so.8"
    assert all(gpu.get(name) == version for name, version in cuda.items())
    assert gpu["mxnet-cu112"] == pins(setup)["mxnet-cu112"] and "mxnet" not in gpu
    gpu_only = set(cuda) | {"mxnet-cu112"}
    assert {k: v for k, v in gpu.items() if k not in gpu_only} == \
        {k: v for k, v in cpu.items() if k != "mxnet"}
