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
# # Fig. 4 — Brain2Pix (FixedRF, LearnedRF) against the baselines
# Reads what `run_fixed_rf.py`, `run_learned_rf.py` and `run_baselines.py` wrote under
# `BRAIN2PIX_RESULTS` (default `results`). Models whose results are missing are left out.

# %%
import os

import matplotlib

matplotlib.use("Agg")
from brain2pix_gluon.plotting import model_grid  # noqa: E402

RESULTS = os.environ.get("BRAIN2PIX_RESULTS", "results")
candidates = {
    "B2P-FixedRF": ("fixed_rf", "b2p_fixedrf"),
    "B2P-LearnedRF": ("learned_rf", "b2p_learnedrf"),
    "Baseline 1": ("baselines", "baseline_1"),
    "Baseline 2": ("baselines", "baseline_2"),
}
files = {label: os.path.join(RESULTS, exp, slug, "recon", "reconstructions.h5")
         for label, (exp, slug) in candidates.items()}
files = {label: path for label, path in files.items() if os.path.exists(path)}
print(sorted(files))

# %%
fig = model_grid(files, count=6)
fig.savefig(os.path.join(RESULTS, "fig4.png"), dpi=120, bbox_inches="tight")
fig
