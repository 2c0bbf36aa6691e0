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
# # Fig. 5 — ROI experiment: V1–3, V1, V2, V3 (input | reconstruction | ground truth)
# Reads what `python scripts/run_roi.py` wrote under `BRAIN2PIX_RESULTS` (default `results`).

# %%
import os

import matplotlib

matplotlib.use("Agg")
from brain2pix_gluon.plotting import panel_grid  # noqa: E402

RESULTS = os.environ.get("BRAIN2PIX_RESULTS", "results")
files = {label: os.path.join(RESULTS, "roi", slug, "recon", "reconstructions.h5")
         for label, slug in (("V1-3", "v1_3"), ("V1", "v1"), ("V2", "v2"), ("V3", "v3"))}
files = {label: path for label, path in files.items() if os.path.exists(path)}
print(sorted(files))

# %%
fig = panel_grid(files, count=5)
fig.savefig(os.path.join(RESULTS, "fig5.png"), dpi=120, bbox_inches="tight")
fig
