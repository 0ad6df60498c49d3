"""The encoder contract: one modality's inputs -> a feature sequence and a pooled vector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class EncoderOutput:
    sequence: Tensor  # [B, T, D] features per token / patch / frame
    pooled: Tensor  # [B, D] one vector per sample
    mask: Tensor  # [B, T] bool, True where `sequence` holds a real position


class Encoder(nn.Module):
    """Base class. Subclasses set `output_dim` and implement `forward(**inputs)`.

    `inputs` are the tensors the modality's processor produced for the batch (see
    `plait.data.batch.Batch`), passed by keyword, so an encoder never parses raw data
    itself. Each subclass names the keys it reads (`input_ids`, `pixel_values`, ...) and
    takes `**_` for the rest.
    """

    output_dim: int

    # `*args: Any, **kwargs: Any` lets each subclass declare its own named inputs while the
    # return type (EncoderOutput) stays part of the checked contract.
    def forward(self, *args: Any, **kwargs: Any) -> EncoderOutput:  # pragma: no cover
        raise NotImplementedError


def masked_mean(sequence: Tensor, mask: Tensor) -> Tensor:
    """Mean over valid positions: [B, T, D], [B, T] -> [B, D]; an empty row gives zeros."""
    weights = mask.to(sequence.dtype).unsqueeze(-1)  # [B, T, 1]
    return (sequence * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def masked_max(sequence: Tensor, mask: Tensor) -> Tensor:
    """Max over valid positions: [B, T, D], [B, T] -> [B, D]; an empty row gives zeros."""
    filled = sequence.masked_fill(~mask.unsqueeze(-1), torch.finfo(sequence.dtype).min)
    pooled = filled.max(1).values  # [B, D]
    return torch.where(mask.any(1, keepdim=True), pooled, torch.zeros_like(pooled))
