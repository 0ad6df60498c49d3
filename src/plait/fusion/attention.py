"""Attention-weighted sum over modalities."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from plait.config import FusionOptions
from plait.encoders.base import EncoderOutput
from plait.fusion.base import Fusion


class AttentionFusion(Fusion):
    """Project each pooled vector to `options.dim`, score it with a learned vector and take
    the softmax-weighted sum (additive attention of Bahdanau et al. 2015 applied over
    modalities, as in attention-based multimodal fusion, Hori et al. 2017).

    score_m = v^T tanh(W h_m + b); weights = softmax over the present modalities.
    Missing modality: its score is masked before the softmax, so it gets weight 0 and its
    input is never read. A sample with nothing present gets zeros.
    """

    Options = FusionOptions

    def __init__(
        self, input_dims: dict[str, int], options: FusionOptions, num_outputs: int
    ) -> None:
        super().__init__(input_dims, options, num_outputs)
        self.proj = nn.ModuleList(nn.Linear(d, options.dim) for d in input_dims.values())
        self.score_hidden = nn.Linear(options.dim, options.dim)
        self.score_vector = nn.Linear(options.dim, 1, bias=False)  # the learned vector v
        self.dropout = nn.Dropout(options.dropout)
        self.output_dim = options.dim

    def forward(self, features: dict[str, EncoderOutput], presence: dict[str, Tensor]) -> Tensor:
        present = torch.stack([presence[m].bool() for m in self.modalities], 1)  # [B, M]
        hidden = torch.stack(
            [proj(features[m].pooled) for proj, m in zip(self.proj, self.modalities, strict=True)],
            1,
        )  # [B, M, dim]
        hidden = torch.where(present.unsqueeze(-1), hidden, 0.0)  # [B, M, dim]
        scores = self.score_vector(torch.tanh(self.score_hidden(hidden))).squeeze(-1)  # [B, M]
        scores = scores.masked_fill(~present, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1) * present  # [B, M]; all-missing row -> 0
        return self.dropout((weights.unsqueeze(-1) * hidden).sum(1))  # [B, dim]
