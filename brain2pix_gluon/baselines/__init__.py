"""Baselines of the paper (section 3.5; docs/method.md section 6).

Baseline 1 (Nishimoto-like retrieval) lives here; baselines 2 (Shen-like) and 3 (fully connected)
are trained by the same :class:`~brain2pix_gluon.training.trainer.Trainer` with
``model.variant=shen`` / ``fully_connected`` (``configs/baseline2_shen.yaml``,
``configs/baseline3_fc.yaml``).
"""

from .nishimoto import (NishimotoBaseline, RidgeEncoder, TopK, retrieve_top_k,
                        run_nishimoto_baseline, sample_patterns)

__all__ = ["NishimotoBaseline", "RidgeEncoder", "TopK", "retrieve_top_k", "sample_patterns",
           "run_nishimoto_baseline"]
