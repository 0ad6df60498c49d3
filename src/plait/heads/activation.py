"""What a supervised head's raw outputs mean: the activation of each task.

Lives with the heads (not with the predictor), so evaluation and attribution can turn raw
outputs into probabilities without importing the predictor that imports them back.
"""

from __future__ import annotations

import torch


def activate(raw: torch.Tensor, task: str) -> torch.Tensor:
    """Raw head outputs [B, K] -> probabilities (classification, multilabel) or values."""
    if task == "classification":
        return raw.softmax(-1)
    if task == "multilabel":
        return raw.sigmoid()
    return raw
