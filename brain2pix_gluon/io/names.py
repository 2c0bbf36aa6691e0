"""The names the datasets' files use: ROIs, their mask keys and the released file names.

Every module that needs one of these imports it from here, so a dataset that names them
differently is described in one place.
"""

__all__ = ["ROIS", "RAW_PARTS", "MASK_KEYS", "VIM2_PARTS", "VIM2_KEYS", "VIM2_ROI_NAMES",
           "MASK_FILES", "CENTRE_TABLE", "COL_CENTRES", "ROW_CENTRES", "CENTRE_FILES",
           "COL_CENTRE_CHOICES", "ROW_CENTRE_CHOICES",
           "PRF_ESTIMATES", "PRF_FIGURE"]

from ..config import ROIS

# The raw layout (the authors' release): each ROI is a dorsal and a ventral part.
RAW_PARTS = {roi: (roi + "d", roi + "v") for roi in ROIS}
MASK_KEYS = tuple(key for roi in ROIS for key in RAW_PARTS[roi])      # V1d V1v ... V3v
# vim-2: each ROI is a left and a right hemisphere (voxels stacked in that order).
VIM2_PARTS = {roi: (roi + "lh", roi + "rh") for roi in ROIS}
VIM2_KEYS = tuple(key for roi in ROIS for key in VIM2_PARTS[roi])     # V1lh V1rh ... V3rh
VIM2_ROI_NAMES = tuple(key.lower() for key in VIM2_KEYS)              # the release's roi/ names

# Files of a dataset folder
MASK_FILES = ("roimask.mat", "roimask.npz", "masks")     # the first that exists is read
CENTRE_TABLE = "rf_centres.csv"                          # centres as a table (mask,col,row)
COL_CENTRES = "col_centers_112px.mat"                    # x (horizontal) centre of each mask voxel
ROW_CENTRES = "row_centers_112px.mat"                    # y (vertical)
CENTRE_FILES = (COL_CENTRES, ROW_CENTRES)
COL_CENTRE_CHOICES = (COL_CENTRES, "col_centers.npz")   # the raw layout takes either format
ROW_CENTRE_CHOICES = (ROW_CENTRES, "row_centers.npz")
PRF_ESTIMATES = "prf_estimates.npz"                      # every estimate of `estimate-rf`
PRF_FIGURE = "prf_summary.png"
