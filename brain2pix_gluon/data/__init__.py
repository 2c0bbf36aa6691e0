"""Gluon datasets over the prepared HDF5 files."""

from .dataset import RFSImageDataset, EpochSampler

__all__ = ["RFSImageDataset", "EpochSampler"]
