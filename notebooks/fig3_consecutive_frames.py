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
# # Fig. 3 — consecutive reconstructed frames (FixedRF)
# Reads what `python scripts/run_fixed_rf.py` wrote; set `BRAIN2PIX_RESULTS` to its `--out`
# folder (default `results`). Nothing is trained or evaluated here.

# %%
import os

import matplotlib

matplotlib.use("Agg")
from brain2pix_gluon.experiments import figure_inputs  # noqa: E402
from brain2pix_gluon.plotting import consecutive_frames  # noqa: E402

RESULTS = os.environ.get("BRAIN2PIX_RESULTS", "results")
recon = figure_inputs(RESULTS, "fig3")["B2P-FixedRF"]   # fails loudly when it is missing
print(recon)

# %%
fig = consecutive_frames(recon, start=0, count=8)
fig.savefig(os.path.join(RESULTS, "fig3.png"), dpi=120, bbox_inches="tight")
fig
