"""Pure NumPy preprocessing: fisheye warp, receptive-field rendering, signal alignment."""

from .retina import fisheye_warp, fisheye_map, FisheyeWarp
from .receptive_fields import RFMapper, rf_pixel_indices
from .signals import zscore_runs, select_roi_voxels, alignment_index

__all__ = ["fisheye_warp", "fisheye_map", "FisheyeWarp", "RFMapper", "rf_pixel_indices",
           "zscore_runs", "select_roi_voxels", "alignment_index"]
