"""A trained aligned model: `AlignedPredictor` (embed, similarity, zero-shot, evaluate).

The code lives in `plait.tasks.aligned_predictor` (beside the predictor base every task
shares); these names stay importable from here.
"""

from plait.tasks.aligned_predictor import DUAL_FOLDER, AlignedPredictor, ZeroShotResult

__all__ = ["DUAL_FOLDER", "AlignedPredictor", "ZeroShotResult"]
