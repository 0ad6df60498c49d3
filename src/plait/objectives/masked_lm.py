"""Masked language modelling: hide tokens, predict them back (BERT's 80/10/10 recipe)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE = -100  # targets at unmasked positions; cross_entropy skips them


def mask_tokens(
    input_ids: Tensor,
    attention_mask: Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    special_ids: Tensor,
    probability: float = 0.15,
) -> tuple[Tensor, Tensor]:
    """Choose `probability` of the real tokens; of those 80% become `mask_id`, 10% a random
    token, 10% stay. At least one token per batch is chosen, so the loss is defined.

    Args:
        input_ids, attention_mask: [B, T].
        special_ids: [S] token ids never chosen (padding, [CLS], [SEP], ...).

    Returns:
        (masked input_ids [B, T], targets [B, T] with IGNORE where nothing is predicted).
    """
    candidates = attention_mask.bool() & ~torch.isin(input_ids, special_ids)  # [B, T]
    chosen = (torch.rand(input_ids.shape, device=input_ids.device) < probability) & candidates
    if not chosen.any() and candidates.any():
        first = candidates.flatten().nonzero()[0]
        chosen.view(-1)[first] = True
    targets = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    draw = torch.rand(input_ids.shape, device=input_ids.device)  # [B, T]
    masked = torch.where(chosen & (draw < 0.8), torch.full_like(input_ids, mask_id), input_ids)
    random_tokens = torch.randint_like(input_ids, vocab_size)
    masked = torch.where(chosen & (draw >= 0.8) & (draw < 0.9), random_tokens, masked)
    return masked, targets


def masked_lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy over the chosen positions: logits [B, T, V] and targets [B, T], or
    logits [N, V] and targets [N] of the chosen positions alone."""
    if not (targets != IGNORE).any():
        return logits.sum() * 0.0
    flat = logits.reshape(-1, logits.shape[-1])
    return F.cross_entropy(flat, targets.reshape(-1), ignore_index=IGNORE)
