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
# # Tables 1–8
# Collects every `results.json` under `BRAIN2PIX_RESULTS` (default `results`) and renders the
# paper's tables (correlation and distance per experiment) as Markdown, CSV and LaTeX.

# %%
import os

from IPython.display import Markdown, display

from brain2pix_gluon.experiments.tables import write_tables

RESULTS = os.environ.get("BRAIN2PIX_RESULTS", "results")
written = write_tables(RESULTS)
text = open([p for p in written if p.endswith("tables.md")][0]).read()
display(Markdown(text))
print(text)
