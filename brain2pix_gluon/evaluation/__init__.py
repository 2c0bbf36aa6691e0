"""Evaluation: the paper's 12 feature metrics, significance tests, field metrics and tables."""

from .metrics import (euclidean_rows, flow_epe, pearson_rows, pixcorr, psnr, ssim_gray,
                      two_way_identification)
from .stats import binomial_vs_baseline, summarize, ttest_vs_chance

__all__ = ["pearson_rows", "euclidean_rows", "pixcorr", "ssim_gray", "psnr",
           "two_way_identification", "flow_epe", "summarize", "ttest_vs_chance",
           "binomial_vs_baseline"]
