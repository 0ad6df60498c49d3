"""Region head for masked region modelling, with another modality as context."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from plait.heads.masked_lm import MaskedLMHead


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> Tensor:
    """Transformer sine/cosine position codes: [length, dim]."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)  # [T, 1]
    rate = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )  # [ceil(D / 2)]
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(position * rate)
    codes[:, 1::2] = torch.cos(position * rate)[:, : dim // 2]
    return codes  # [T, D]


class MaskedRegionHead(nn.Module):
    """One learned query per region reads the masked tower's sequence and the other
    modality's, then predicts the region's per-channel mean.

    tower [B, T, D] + context [B, S, Dc] -> predictions [B, G, C]. The queries and the
    tower's positions (sine codes over the flattened feature map) run through the MLM
    head's decoder block (`MaskedLMHead`: self-attention over queries and tower features,
    cross-attention into the projected context), whose output layer here gives C values
    instead of vocabulary logits. A region query is not tied to tower positions, so the
    head works whatever the tower's sequence is (a CNN's map, a ViT's patches, frames).

    Args:
        key: the input the region grid is cut from (`pixel_values`, `features`, ...).
    """

    def __init__(
        self,
        tower_dim: int,
        context_dim: int,
        regions: int,
        channels: int,
        *,
        key: str,
        layers: int = 1,
        heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.key = key
        self.queries = nn.Parameter(torch.randn(regions, tower_dim) * 0.02)  # [G, D]
        self.decoder = MaskedLMHead(tower_dim, context_dim, channels, layers, heads, dropout)

    @property
    def regions(self) -> int:
        return int(self.queries.shape[0])

    def forward(
        self, tower: Tensor, tower_mask: Tensor, context: Tensor, context_mask: Tensor
    ) -> Tensor:
        batch, length, dim = tower.shape
        positions = sinusoidal_positions(length, dim, tower.device)  # [T, D]
        queries = self.queries.unsqueeze(0).expand(batch, -1, -1)  # [B, G, D]
        sequence = torch.cat([queries, tower + positions], dim=1)  # [B, G + T, D]
        query_mask = tower_mask.new_ones(batch, self.regions)  # [B, G]
        mask = torch.cat([query_mask.bool(), tower_mask.bool()], dim=1)  # [B, G + T]
        out = self.decoder(sequence, mask, context, context_mask)  # [B, G + T, C]
        return out[:, : self.regions]  # [B, G, C]
