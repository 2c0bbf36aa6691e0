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
# # Fig. 4 — Brain2Pix (FixedRF, LearnedRF) against the baselines
# Reads what `run_fixed_rf.py`, `run_learned_rf.py` and `run_baselines.py` wrote under
# `BRAIN2PIX_RESULTS` (default `results`). A missing model is an error that names the script to run.

# %%
import os

import matplotlib

matplotlib.use("Agg")
from brain2pix_gluon.experiments import figure_inputs  # noqa: E402
from brain2pix_gluon.plotting import model_grid  # noqa: E402

RESULTS = os.environ.get("BRAIN2PIX_RESULTS", "results")
files = figure_inputs(RESULTS, "fig4")   # every panel, or an error naming what is missing
print(list(files))

# %%
fig = model_grid(files, count=6)
fig.savefig(os.path.join(RESULTS, "fig4.png"), dpi=120, bbox_inches="tight")
fig
