# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Fig. 6 — reconstructions with 20–100 % of the training data
# Reads what `python scripts/run_data_size.py` wrote under `BRAIN2PIX_RESULTS` (default `results`).

# %%
import os

import matplotlib

matplotlib.use("Agg")
from brain2pix_gluon.plotting import model_grid  # noqa: E402

RESULTS = os.environ.get("BRAIN2PIX_RESULTS", "results")
files = {f"{p}%": os.path.join(RESULTS, "data_size", str(p), "recon", "reconstructions.h5")
         for p in (20, 40, 60, 80, 100)}
files = {label: path for label, path in files.items() if os.path.exists(path)}
print(sorted(files))

# %%
fig = model_grid(files, count=6)
fig.savefig(os.path.join(RESULTS, "fig6.png"), dpi=120, bbox_inches="tight")
fig
