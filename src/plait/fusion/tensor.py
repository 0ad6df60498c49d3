"""Tensor Fusion Network: outer product of the modality vectors."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from plait.config import TensorOptions
from plait.encoders.base import EncoderOutput
from plait.fusion.base import Fusion

MAX_TENSOR_SIZE = 1 << 20  # entries of the flattened outer product


class TensorFusion(Fusion):
    """Tensor Fusion Network (Zadeh et al. 2017, "Tensor Fusion Network for Multimodal
    Sentiment Analysis").

    Each pooled vector is projected to `options.tensor_dim` and a constant 1 is appended;
    the outer product across all modalities holds every unimodal, bimodal, ... M-modal
    interaction term. It is flattened ((tensor_dim + 1) ** M entries), then Linear + ReLU.

    Missing modality: its projected vector is zeros but the appended 1 is kept, so the
    other modalities' terms survive and its own input is never read. A sample with nothing
    present gives the tensor that is 1 in one corner and 0 elsewhere (finite).
    """

    Options = TensorOptions

    def __init__(
        self, input_dims: dict[str, int], options: TensorOptions, num_outputs: int
    ) -> None:
        super().__init__(input_dims, options, num_outputs)
        size = (options.tensor_dim + 1) ** len(input_dims)
        if size > MAX_TENSOR_SIZE:
            raise ValueError(
                f"tensor fusion: (tensor_dim + 1) ** {len(input_dims)} = {size} entries is too "
                f"large (max {MAX_TENSOR_SIZE}); lower fusion.tensor_dim or use `low_rank`"
            )
        self.proj = nn.ModuleList(nn.Linear(d, options.tensor_dim) for d in input_dims.values())
        self.out = nn.Linear(size, options.dim)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(options.dropout)
        self.output_dim = options.dim

    def modality_vectors(
        self, features: dict[str, EncoderOutput], presence: dict[str, Tensor]
    ) -> list[Tensor]:
        """Each modality's projected vector with the constant 1 appended: [B, tensor_dim + 1]."""
        vectors = []
        for proj, name in zip(self.proj, self.modalities, strict=True):
            present = presence[name].bool().unsqueeze(-1)  # [B, 1]
            z = torch.where(present, proj(features[name].pooled), 0.0)  # [B, t]
            vectors.append(torch.cat([z, z.new_ones(z.shape[0], 1)], -1))  # [B, t + 1]
        return vectors

    def fused_tensor(
        self, features: dict[str, EncoderOutput], presence: dict[str, Tensor]
    ) -> Tensor:
        """The flattened outer product: [B, (tensor_dim + 1) ** M], row-major over modalities."""
        vectors = self.modality_vectors(features, presence)
        fused = vectors[0]  # [B, t + 1]
        for z in vectors[1:]:
            fused = torch.einsum("bi,bj->bij", fused, z).flatten(1)  # [B, prod so far * (t + 1)]
        return fused

    def forward(self, features: dict[str, EncoderOutput], presence: dict[str, Tensor]) -> Tensor:
        fused = self.fused_tensor(features, presence)  # [B, (t + 1) ** M]
        return self.dropout(self.act(self.out(fused)))  # [B, dim]
