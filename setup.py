"""Installation of brain2pix_gluon.

MXNet 1.9.1 is retired upstream and breaks on numpy >= 1.24, so every dependency is pinned to a set
that was seen to install and import together on Python 3.11 (see README, "Installation").
Choose the MXNet build with an extra: ``pip install -e .[cpu]`` or ``pip install -e .[cu112]``.
"""

import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "brain2pix_gluon", "__init__.py")) as handle:
    VERSION = re.search(r'^__version__ = "([^"]+)"', handle.read(), re.M).group(1)

INSTALL_REQUIRES = [
    "numpy==1.23.5",
    "scipy==1.11.4",
    "matplotlib==3.8.4",
    "pandas==2.0.3",
    "scikit-image==0.22.0",
    "scikit-learn==1.3.2",
    "opencv-python==4.8.1.78",
    "h5py==3.11.0",
    "imageio-ffmpeg==0.6.0",  # ships the ffmpeg binary that decodes the videos (README)
    "gluoncv==0.10.5.post0",
    "nibabel==5.2.1",
    "tqdm==4.66.4",
    "PyYAML==6.0.1",
    "Pillow==10.3.0",
    # TensorBoard event files while training (training/tensorboard.py); needs no TensorFlow or
    # PyTorch. protobuf: the version these were seen to install and work with
    "tensorboardX==2.6.2.2",
    "protobuf==7.36.2",
]

# the server that shows them (`tensorboard --logdir RUN/tensorboard`): optional, and the reader
# the tests check the event files with
TENSORBOARD = ["tensorboard==2.21.0"]

# The mxnet-cu112 wheel does not carry the CUDA libraries libmxnet.so links against; NVIDIA's pip
# wheels do. One wheel per soname libmxnet.so names (readelf -d): libcudart.so.11.0,
# libcublas.so.11 (+ libcublasLt.so.11), libcusolver.so.11, libcufft.so.10, libcurand.so.10,
# libnvrtc.so.11.2, libnvToolsExt.so.1, libnccl.so.2, libcudnn.so.8. cuDNN 8: the newest
# nvidia-cudnn-cu11 releases are cuDNN 9, another soname. CUDA 11.8 libraries serve a CUDA 11.2
# build (CUDA 11 minor-version compatibility). Same pins in environment-gpu.yml (docs/gpu.md).
CUDA11_LIBRARIES = [
    "nvidia-cuda-runtime-cu11==11.8.89",
    "nvidia-cuda-nvrtc-cu11==11.8.89",
    "nvidia-cublas-cu11==11.11.3.6",
    "nvidia-cusolver-cu11==11.4.1.48",
    "nvidia-curand-cu11==10.3.0.86",
    "nvidia-cufft-cu11==10.9.0.58",
    "nvidia-nvtx-cu11==11.8.86",
    "nvidia-nccl-cu11==2.21.5",
    "nvidia-cudnn-cu11==8.9.6.50",
]

EXTRAS = {
    "cpu": ["mxnet==1.9.1"],
    # the CUDA libraries libmxnet.so links against (CUDA11_LIBRARIES, loaded by
    # brain2pix_gluon/cuda_libraries.py); only the driver's libcuda.so.1 comes from the machine
    "cu112": ["mxnet-cu112==1.9.1", *CUDA11_LIBRARIES],
    # the notebook stack is pinned too: IPython 9 dropped an API ipykernel 6.29 imports
    "tensorboard": TENSORBOARD,
    "test": [*TENSORBOARD, "pytest==8.2.2", "nbclient==0.10.0", "nbformat==5.10.4", "ipykernel==6.29.4",
             "ipython==8.25.0", "matplotlib-inline==0.1.7", "jupyter_client==8.6.2",
             "traitlets==5.14.3", "jupytext==1.16.2"],
}

setup(
    name="brain2pix_gluon",
    version=VERSION,
    description="MXNet/Gluon reproduction of Brain2Pix: video frame reconstruction from fMRI",
    long_description=open(os.path.join(HERE, "README.md")).read()
    if os.path.exists(os.path.join(HERE, "README.md")) else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(exclude=("tests", "tests.*")),
    include_package_data=True,
    package_data={"brain2pix_gluon": ["configs/*.yaml"]},
    python_requires=">=3.8,<3.12",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["brain2pix=brain2pix_gluon.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
)
