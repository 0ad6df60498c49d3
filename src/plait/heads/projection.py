"""Projection heads: a tower's pooled features -> the shared embedding space."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn


class Projection(nn.Module):
    """[B, in_dim] -> [B, out_dim]. `linear` (no bias, as CLIP) or `mlp` (one GELU layer).

    The output is not normalised here: the aligned model normalises, so pretrained
    projections (CLIP's, CLAP's) can stand in for this module unchanged.
    """

    def __init__(self, in_dim: int, out_dim: int, kind: Literal["linear", "mlp"] = "linear"):
        super().__init__()
        if kind == "mlp":
            self.net: nn.Module = nn.Sequential(
                nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, out_dim)
            )
        else:
            self.net = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.net(pooled)  # [B, out_dim]
