"""Fusion by averaging projected modality vectors."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from plait.config import FusionOptions
from plait.encoders.base import EncoderOutput
from plait.fusion.base import Fusion


class SumFusion(Fusion):
    """Project each pooled vector to `options.dim` and average over the present modalities.

    Element-wise sum / mean fusion, the simplest intermediate fusion (Baltrusaitis et al.
    2019, "Multimodal Machine Learning: A Survey and Taxonomy"). Missing modality: left out
    of the mean (the mean is over present modalities only); a sample with nothing present
    gets a zero vector.
    """

    Options = FusionOptions

    def __init__(
        self, input_dims: dict[str, int], options: FusionOptions, num_outputs: int
    ) -> None:
        super().__init__(input_dims, options, num_outputs)
        self.proj = nn.ModuleList(nn.Linear(d, options.dim) for d in input_dims.values())
        self.dropout = nn.Dropout(options.dropout)
        self.output_dim = options.dim

    def forward(self, features: dict[str, EncoderOutput], presence: dict[str, Tensor]) -> Tensor:
        present = torch.stack([presence[m].bool() for m in self.modalities], 1)  # [B, M]
        projected = torch.stack(
            [proj(features[m].pooled) for proj, m in zip(self.proj, self.modalities, strict=True)],
            1,
        )  # [B, M, dim]
        # where (not multiply) so even NaN placeholders of a missing modality are dropped.
        projected = torch.where(present.unsqueeze(-1), projected, 0.0)  # [B, M, dim]
        count = present.sum(1, keepdim=True).clamp_min(1).to(projected.dtype)  # [B, 1]
        return self.dropout(projected.sum(1) / count)  # [B, dim]
