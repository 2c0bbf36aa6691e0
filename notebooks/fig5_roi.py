# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.16.2
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Fig. 5 — ROI experiment: V1–3, V1, V2, V3 (input | reconstruction | ground truth)
# Reads what `python scripts/run_roi.py` wrote under `BRAIN2PIX_RESULTS` (default `results`).

# %%
import os

import matplotlib

matplotlib.use("Agg")
from brain2pix_gluon.experiments import figure_inputs  # noqa: E402
from brain2pix_gluon.plotting import panel_grid  # noqa: E402

RESULTS = os.environ.get("BRAIN2PIX_RESULTS", "results")
files = figure_inputs(RESULTS, "fig5")   # every panel, or an error naming what is missing
print(list(files))

# %%
fig = panel_grid(files, count=5)
fig.savefig(os.path.join(RESULTS, "fig5.png"), dpi=120, bbox_inches="tight")
fig
