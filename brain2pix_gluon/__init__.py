"""brain2pix_gluon: an MXNet/Gluon reproduction of Brain2Pix (Le et al., Front. Neurosci. 2022).

fMRI responses of V1, V2 and V3 are placed on a 96x96 image by their receptive-field centres
(RFSimages) and a pix2pix U-Net turns them into the video frames the participant watched.
"""

__version__ = "0.1.0"
