"""Late fusion: one prediction head per modality, predictions averaged."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from plait.config import FusionOptions
from plait.encoders.base import EncoderOutput
from plait.fusion.base import Fusion


class LateFusion(Fusion):
    """Late (decision-level) fusion (Snoek et al. 2005, "Early versus Late Fusion in
    Semantic Video Analysis"): each modality predicts on its own, with an MLP
    pooled -> `options.dim` -> `num_outputs`, and the logits are averaged.

    The average is weighted by learned per-modality weights kept in log space
    (softmax over the present modalities; zero-initialised, so it starts as a plain
    mean). `produces_logits` is True: the output is already [B, num_outputs] logits and the
    model skips its shared head; `options.dropout` is applied inside each head, not to the
    logits. Missing modality: left out of the weighted mean and its input never read. A
    sample with nothing present gets zero logits.
    """

    Options = FusionOptions

    produces_logits = True

    def __init__(
        self, input_dims: dict[str, int], options: FusionOptions, num_outputs: int
    ) -> None:
        super().__init__(input_dims, options, num_outputs)
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Linear(d, options.dim),
                nn.ReLU(),
                nn.Dropout(options.dropout),
                nn.Linear(options.dim, num_outputs),
            )
            for d in input_dims.values()
        )
        self.log_weights = nn.Parameter(torch.zeros(len(input_dims)))  # [M]
        self.output_dim = num_outputs

    def forward(self, features: dict[str, EncoderOutput], presence: dict[str, Tensor]) -> Tensor:
        present = torch.stack([presence[m].bool() for m in self.modalities], 1)  # [B, M]
        logits = torch.stack(
            [head(features[m].pooled) for head, m in zip(self.heads, self.modalities, strict=True)],
            1,
        )  # [B, M, K]
        logits = torch.where(present.unsqueeze(-1), logits, 0.0)  # [B, M, K]
        scores = self.log_weights.to(logits.dtype).expand_as(present)  # [B, M]
        scores = scores.masked_fill(~present, torch.finfo(logits.dtype).min)
        weights = torch.softmax(scores, dim=1) * present  # [B, M]; all-missing row -> 0
        return (weights.unsqueeze(-1) * logits).sum(1)  # [B, K]
