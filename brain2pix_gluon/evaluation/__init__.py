"""Evaluation: the paper's 12 feature metrics, significance tests, field metrics and tables."""

from .metrics import (euclidean_rows, fisheye_valid_mask, flow_epe, pixel_metrics,
                      mean_training_frame, pearson_rows, pixcorr, psnr, ssim_gray,
                      two_way_identification)
from .stats import (binomial_vs_baseline, identification_test, paired_comparison, summarize,
                    ttest_vs_chance)

__all__ = ["pearson_rows", "euclidean_rows", "pixcorr", "ssim_gray", "psnr",
           "two_way_identification", "flow_epe", "summarize", "ttest_vs_chance",
           "binomial_vs_baseline", "fisheye_valid_mask", "mean_training_frame",
           "pixel_metrics", "identification_test", "paired_comparison"]
