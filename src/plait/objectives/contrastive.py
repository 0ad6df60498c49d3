"""Contrastive alignment losses: CLIP's InfoNCE and SigLIP's pairwise sigmoid loss.

Both are plain functions of two batches of L2-normalised embeddings, so the caller decides
where the embeddings come from (one process, or gathered from every DDP process, which
gives each process the whole global batch as negatives). Nothing here caps the batch
size: the only state is a [B, B] similarity matrix.

Duplicates: when two rows of a batch hold the same caption (or the same image), the
"negative" pair (image i, caption j) is really a match. `positive_pairs` turns row
fingerprints into a [B, B] mask of such pairs; the losses then either count them as
positives (soft targets spread over every match) or leave them out of the negatives.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Duplicates = Literal["positive", "mask", "ignore"]
MAX_LOGIT_SCALE = 100.0  # CLIP clamps the learned scale here for stability


def fingerprints(inputs: dict[str, Tensor]) -> Tensor:
    """One float64 per row that is equal for identical rows and, in practice, different
    otherwise: a fixed random projection of the row's values. [B] (gatherable across DDP
    processes, unlike `torch.unique` indices)."""
    batch = len(next(iter(inputs.values())))
    total = torch.zeros(batch, dtype=torch.float64, device=next(iter(inputs.values())).device)
    for index, key in enumerate(sorted(inputs)):
        flat = inputs[key].reshape(batch, -1).to(torch.float64)  # [B, F]
        generator = torch.Generator().manual_seed(1_000_003 * (index + 1) + flat.shape[1])
        weights = torch.rand(flat.shape[1], generator=generator, dtype=torch.float64)  # [F]
        total = total + flat @ weights.to(flat.device)  # [B]
    return total


def positive_pairs(prints_a: Tensor, prints_b: Tensor) -> Tensor:
    """[B] and [B] fingerprints -> [B, B] bool: (i, j) match when a_i == a_j or b_i == b_j.

    If caption i equals caption j, then image j is as good a match for caption i as its
    own image is; the diagonal is always True.
    """
    same_a = prints_a.unsqueeze(0) == prints_a.unsqueeze(1)  # [B, B]
    same_b = prints_b.unsqueeze(0) == prints_b.unsqueeze(1)  # [B, B]
    eye = torch.eye(len(prints_a), dtype=torch.bool, device=prints_a.device)
    return same_a | same_b | eye


def clip_loss(
    a: Tensor,
    b: Tensor,
    logit_scale: Tensor,
    positives: Tensor | None = None,
    duplicates: Duplicates = "positive",
) -> Tensor:
    """Symmetric InfoNCE (CLIP): cross-entropy of a->b and b->a over in-batch candidates.

    Args:
        a, b: [B, D] L2-normalised embeddings; row i of `a` pairs with row i of `b`.
        logit_scale: scalar, the log of the inverse temperature (learned); the scale is
            clamped at 100.
        positives: [B, B] bool from `positive_pairs`; None means only the diagonal.
        duplicates: with `positives`, `positive` spreads each row's target uniformly
            over its matches, `mask` removes the off-diagonal matches from the softmax,
            `ignore` uses the diagonal alone (plain CLIP).
    """
    scale = logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)
    logits = scale * a @ b.T  # [B, B]
    eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
    if positives is None or duplicates == "ignore" or bool((positives == eye).all()):
        target = torch.arange(len(a), device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    if duplicates == "mask":
        hidden = positives & ~eye  # [B, B]
        logits = logits.masked_fill(hidden, float("-inf"))
        target = torch.arange(len(a), device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    soft = positives.to(logits.dtype)
    soft = soft / soft.sum(1, keepdim=True)  # [B, B], rows sum to 1 (symmetric mask)
    return 0.5 * (F.cross_entropy(logits, soft) + F.cross_entropy(logits.T, soft))


def siglip_loss(
    a: Tensor,
    b: Tensor,
    logit_scale: Tensor,
    logit_bias: Tensor,
    positives: Tensor | None = None,
    duplicates: Duplicates = "positive",
) -> Tensor:
    """SigLIP: every (i, j) pair is an independent binary match / no-match decision.

    loss = -1/B * sum_ij log sigmoid(z_ij * (exp(logit_scale) * a_i . b_j + logit_bias)),
    z_ij = +1 for a match, -1 otherwise (Zhai et al. 2023). With `duplicates: mask` the
    off-diagonal matches are left out of the sum; `positive` labels them +1.
    """
    logits = logit_scale.exp() * a @ b.T + logit_bias  # [B, B]
    eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
    match = eye if positives is None or duplicates == "ignore" else positives
    signs = match.to(logits.dtype) * 2 - 1  # [B, B] of +1 / -1
    terms = F.logsigmoid(signs * logits)  # [B, B]
    if positives is not None and duplicates == "mask":
        terms = terms.masked_fill(positives & ~eye, 0.0)
    return -terms.sum() / len(a)


def similarity_logits(a: Tensor, b: Tensor, logit_scale: Tensor) -> Tensor:
    """[Na, D], [Nb, D] -> [Na, Nb] scaled cosine logits (the scale clamped as in training)."""
    return logit_scale.exp().clamp(max=MAX_LOGIT_SCALE) * a @ b.T
