"""Supervised losses as plain functions of tensors (no batch dicts, no globals)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def classification_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    label_smoothing: float = 0.0,
    class_weights: Tensor | None = None,
) -> Tensor:
    """Cross-entropy. logits [B, K], targets [B] long -> scalar."""
    return F.cross_entropy(logits, targets, weight=class_weights, label_smoothing=label_smoothing)


def multilabel_loss(logits: Tensor, targets: Tensor, *, pos_weight: Tensor | None = None) -> Tensor:
    """Binary cross-entropy per label. logits [B, L], targets [B, L] in {0, 1} -> scalar."""
    return F.binary_cross_entropy_with_logits(logits, targets.float(), pos_weight=pos_weight)


def regression_loss(predictions: Tensor, targets: Tensor, *, kind: str = "mse") -> Tensor:
    """MSE or Huber. predictions/targets [B, R] -> scalar."""
    if kind == "huber":
        return F.huber_loss(predictions, targets)
    return F.mse_loss(predictions, targets)
