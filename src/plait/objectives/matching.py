"""Image(audio)-text matching: hard negatives mined from contrastive similarities."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def hard_negatives(similarity: Tensor, positives: Tensor) -> Tensor:
    """For each row, one in-batch negative drawn with probability softmax(similarity).

    The most confusable wrong partners are drawn most often (ALBEF's hard-negative
    mining); matches (`positives` [B, B], duplicates included) are never drawn.

    Args:
        similarity: [B, B] scores of row i against candidate j (no gradient needed).
        positives: [B, B] bool, True where j matches i.

    Returns:
        [B] long, the drawn column per row; -1 where a row has no negative at all.
    """
    weights = similarity.detach().float().softmax(1).masked_fill(positives, 0.0)  # [B, B]
    has_negative = weights.sum(1) > 0  # [B]
    safe = torch.where(has_negative.unsqueeze(1), weights, torch.ones_like(weights))
    drawn = torch.multinomial(safe, 1).squeeze(1)  # [B]
    return torch.where(has_negative, drawn, torch.full_like(drawn, -1))


def matching_pairs(negatives_b: Tensor, negatives_a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The ITM training pairs: every true pair plus one hard negative per side.

    Args:
        negatives_b: [B], for each `a_i` a wrong `b` index (-1: none).
        negatives_a: [B], for each `b_j` a wrong `a` index (-1: none).

    Returns:
        (index_a [N], index_b [N], label [N]) with label 1 for true pairs, 0 for negatives.
    """
    rows = torch.arange(len(negatives_b), device=negatives_b.device)
    keep_b, keep_a = negatives_b >= 0, negatives_a >= 0
    index_a = torch.cat([rows, rows[keep_b], negatives_a[keep_a]])
    index_b = torch.cat([rows, negatives_b[keep_b], rows[keep_a]])
    label = torch.cat(
        [torch.ones_like(rows), torch.zeros_like(rows[keep_b]), torch.zeros_like(rows[keep_a])]
    )
    return index_a, index_b, label


def matching_loss(logits: Tensor, label: Tensor) -> Tensor:
    """Cross-entropy of the [N, 2] match logits against [N] 0/1 labels."""
    return F.cross_entropy(logits, label)
