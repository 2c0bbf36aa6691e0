"""The paper's seven experiments: their registry (labels, configs, tables, figures, result paths)
and the runner that trains, reconstructs, evaluates and tabulates them.

``brain2pix experiment NAME`` (and ``python scripts/run_NAME.py``) is the command-line entry.
"""

from .registry import (EXPERIMENTS, FIGURES, TABLE_GROUPS, Experiment, MissingResultsError,
                       Variant, figure_inputs, get_experiment, result_path, select_variants,
                       table_rows, variant_dir)
from .runner import experiment_config, run_experiment

__all__ = ["EXPERIMENTS", "FIGURES", "TABLE_GROUPS", "Experiment", "MissingResultsError",
           "Variant", "figure_inputs", "get_experiment", "result_path", "select_variants",
           "table_rows", "variant_dir", "experiment_config", "run_experiment"]
