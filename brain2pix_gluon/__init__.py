"""brain2pix_gluon: an MXNet/Gluon reproduction of Brain2Pix (Le et al., Front. Neurosci. 2022).

fMRI responses of V1, V2 and V3 are placed on a 96x96 image by their receptive-field centres
(RFSimages) and a pix2pix U-Net turns them into the video frames the participant watched.
"""

__version__ = "0.1.0"

# Before any module imports mxnet: a CUDA build of MXNet needs the CUDA libraries of the nvidia-*-cu11
# wheels loaded first (cuda_libraries.py). On a CPU build this lists the sys.path folders, no more.
from .cuda_libraries import preload as _preload_cuda_libraries

_preload_cuda_libraries()
