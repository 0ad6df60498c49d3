"""Gated multimodal unit, generalised to any number of modalities."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from plait.config import FusionOptions
from plait.encoders.base import EncoderOutput
from plait.fusion.base import Fusion


class GatedFusion(Fusion):
    """Gated Multimodal Unit (Arevalo et al. 2017, "Gated Multimodal Units for
    Information Fusion"), generalised from 2 to N modalities.

    h_m = tanh(W_m x_m); the gates z = softmax over modalities of a linear layer on the
    concatenation of all x_m, one gate per modality and output dimension; output =
    sum_m z_m * h_m. With two modalities this is the GMU's z / (1 - z).

    Missing modality: its input is zeroed before the gate layer (so it cannot steer the
    other gates) and its gate logit is masked to the lowest finite value (exp gives exactly
    0, as -inf would) before the softmax. A sample with nothing present gets zeros.
    """

    Options = FusionOptions

    def __init__(
        self, input_dims: dict[str, int], options: FusionOptions, num_outputs: int
    ) -> None:
        super().__init__(input_dims, options, num_outputs)
        self.proj = nn.ModuleList(nn.Linear(d, options.dim) for d in input_dims.values())
        self.gate = nn.Linear(sum(input_dims.values()), len(input_dims) * options.dim)
        self.dropout = nn.Dropout(options.dropout)
        self.output_dim = options.dim

    def forward(self, features: dict[str, EncoderOutput], presence: dict[str, Tensor]) -> Tensor:
        present = torch.stack([presence[m].bool() for m in self.modalities], 1)  # [B, M]
        inputs = [
            torch.where(present[:, i, None], features[m].pooled, 0.0)  # [B, D_m]
            for i, m in enumerate(self.modalities)
        ]
        hidden = torch.stack(
            [torch.tanh(p(x)) for p, x in zip(self.proj, inputs, strict=True)], 1
        )  # [B, M, dim]
        logits = self.gate(torch.cat(inputs, -1)).view_as(hidden)  # [B, M, dim]
        mask = present.unsqueeze(-1)  # [B, M, 1]
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        gates = torch.softmax(logits, dim=1) * mask  # [B, M, dim]; all-missing row -> 0
        return self.dropout((gates * hidden).sum(1))  # [B, dim]
