"""Low-rank Multimodal Fusion: tensor fusion with rank-R factorised weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from plait.config import LowRankOptions
from plait.encoders.base import EncoderOutput
from plait.fusion.base import Fusion


class LowRankFusion(Fusion):
    """Low-rank Multimodal Fusion (Liu et al. 2018, "Efficient Low-rank Multimodal Fusion
    with Modality-Specific Factors").

    Same maths as tensor fusion (projected vector z_m with a 1 appended), but the weight of
    the outer product is factorised: one factor per modality of shape
    [rank, tensor_dim + 1, dim] (`factors.<i>`, i = position of the modality), so
    out = sum_r w_r * prod_m (z_m @ factor_m[r]) + bias, never building the full tensor.

    Missing modality: z_m = zeros with the 1 kept (as in tensor fusion), so its factor
    contributes only its constant row and its input is never read. A sample with nothing
    present gets the product of the constant rows (finite).
    """

    Options = LowRankOptions

    def __init__(
        self, input_dims: dict[str, int], options: LowRankOptions, num_outputs: int
    ) -> None:
        super().__init__(input_dims, options, num_outputs)
        rank, t, dim = options.rank, options.tensor_dim, options.dim
        self.proj = nn.ModuleList(nn.Linear(d, t) for d in input_dims.values())
        self.factors = nn.ParameterList(
            nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, t + 1, dim))) for _ in input_dims
        )
        self.fusion_weights = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, rank)))
        self.fusion_bias = nn.Parameter(torch.zeros(1, dim))
        self.dropout = nn.Dropout(options.dropout)
        self.output_dim = dim

    def forward(self, features: dict[str, EncoderOutput], presence: dict[str, Tensor]) -> Tensor:
        fused = None
        for proj, factor, name in zip(self.proj, self.factors, self.modalities, strict=True):
            present = presence[name].bool().unsqueeze(-1)  # [B, 1]
            z = torch.where(present, proj(features[name].pooled), 0.0)  # [B, t]
            z = torch.cat([z, z.new_ones(z.shape[0], 1)], -1)  # [B, t + 1]
            term = torch.einsum("bi,rid->brd", z, factor)  # [B, rank, dim]
            fused = term if fused is None else fused * term  # [B, rank, dim]
        out = torch.einsum("r,brd->bd", self.fusion_weights[0], fused) + self.fusion_bias
        return self.dropout(out)  # [B, dim]
