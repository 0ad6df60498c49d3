"""Early fusion by concatenation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from plait.config import FusionOptions
from plait.encoders.base import EncoderOutput
from plait.fusion.base import Fusion


class ConcatFusion(Fusion):
    """Early fusion: concatenate the pooled vectors, then Linear + ReLU to `options.dim`.

    The classic early-fusion baseline (e.g. Baltrusaitis et al. 2019, "Multimodal Machine
    Learning: A Survey and Taxonomy"). Missing modality: its pooled vector is replaced by a
    learned per-modality "missing" embedding, so the layer sees a fixed, trained stand-in
    and the placeholder input is never read. A sample with nothing present gets all the
    missing embeddings, which is finite.
    """

    Options = FusionOptions

    def __init__(
        self, input_dims: dict[str, int], options: FusionOptions, num_outputs: int
    ) -> None:
        super().__init__(input_dims, options, num_outputs)
        # Indexed by position in self.modalities, so any modality name works.
        self.missing = nn.ParameterList(
            nn.Parameter(torch.randn(d) * 0.02) for d in input_dims.values()
        )
        self.proj = nn.Linear(sum(input_dims.values()), options.dim)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(options.dropout)
        self.output_dim = options.dim

    def forward(self, features: dict[str, EncoderOutput], presence: dict[str, Tensor]) -> Tensor:
        parts = []
        for i, name in enumerate(self.modalities):
            pooled = features[name].pooled  # [B, D_m]
            present = presence[name].bool().unsqueeze(-1)  # [B, 1]
            missing = self.missing[i].to(pooled.dtype).expand_as(pooled)  # [B, D_m]
            parts.append(torch.where(present, pooled, missing))
        joined = torch.cat(parts, dim=-1)  # [B, sum D_m]
        return self.dropout(self.act(self.proj(joined)))  # [B, dim]
