"""The CNN+MLP baseline of visual question answering (`vqa.head: fusion`).

The feature map is pooled to a small fixed grid (`pool_side` x `pool_side`, adaptive
average) and flattened, so where things are survives (the Sort-of-CLEVR CNN+MLP flattens
its whole map); `pool_side: 0` takes the global max instead. A right- or bottom-padded map
(sounds of different lengths in one batch) is pooled over its real cells only, so a sound
answers the same alone and in a batch. That vector and the pooled
question meet in any fusion of the registry (`plait.fusion.FUSIONS`: concat, gated,
cross_attention, ...), then an MLP gives the answer logits. Fusions that attend over
positions (`cross_attention`, `attention`) also see every map cell and every word.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
from pydantic import Field, field_validator
from torch import Tensor, nn

from plait.config import FUSION_OPTIONS, FusionConfig
from plait.encoders.base import EncoderOutput
from plait.fusion import build_fusion
from plait.heads.vqa.base import VqaHead, VqaHeadOptions

CONTEXT, QUESTION = "context", "question"


class FusionHeadOptions(VqaHeadOptions):
    """`vqa.head_options` of the `fusion` head.

    Args:
        fusion: a `fusion.method` name (`concat`, `gated`, `cross_attention`, ...).
        dim / dropout / heads / layers / tensor_dim / rank: that fusion's options, as in
            the `fusion:` block.
        pool_side: the map is average-pooled to this many cells a side and flattened;
            0: its global max (where things are is then lost).
        hidden: width of the MLP after the fusion (0: one linear layer).
    """

    fusion: str = "concat"
    dim: int = Field(256, gt=0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    heads: int = Field(4, ge=1)
    layers: int = Field(1, ge=1)
    tensor_dim: int = Field(16, ge=1)
    rank: int = Field(4, ge=1)
    pool_side: int = Field(4, ge=0)
    hidden: int = Field(256, ge=0)

    @field_validator("fusion")
    @classmethod
    def _known_fusion(cls, value: str) -> str:
        if value not in FUSION_OPTIONS:
            close = difflib.get_close_matches(value, list(FUSION_OPTIONS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{value!r} is not one of {', '.join(FUSION_OPTIONS)}{hint}")
        return value


class FusionHead(VqaHead):
    """Pooled map + pooled question -> a registry fusion -> MLP -> logits [B, A]."""

    Options = FusionHeadOptions

    def __init__(
        self, grid_channels: int, question_dim: int, num_answers: int, options: Any
    ) -> None:
        super().__init__(grid_channels, question_dim, num_answers, options)
        settings: FusionHeadOptions = options
        cells = settings.pool_side**2 if settings.pool_side else 1
        self.pool_side = settings.pool_side
        self.flatten = nn.Sequential(nn.Linear(grid_channels * cells, grid_channels), nn.ReLU())
        block = FusionConfig(
            method=settings.fusion,
            **settings.model_dump(include=set(FusionConfig.model_fields) - {"method"}),
        )
        dims = {CONTEXT: grid_channels, QUESTION: question_dim}
        self.fusion = build_fusion(dims, block, num_answers)
        self.mlp: nn.Module
        if self.fusion.produces_logits:  # `late`: the fusion answers itself
            self.mlp = nn.Identity()
        elif settings.hidden:
            self.mlp = nn.Sequential(
                nn.Linear(self.fusion.output_dim, settings.hidden), nn.ReLU(),
                nn.Dropout(settings.dropout), nn.Linear(settings.hidden, num_answers),
            )  # fmt: skip
        else:
            self.mlp = nn.Linear(self.fusion.output_dim, num_answers)

    def pool(self, grid: Tensor, grid_mask: Tensor | None) -> Tensor:
        """grid [B, C, H, W] -> [B, C * side * side] (or [B, C], the masked max)."""
        if grid_mask is not None:
            grid = grid * grid_mask.unsqueeze(1).to(grid.dtype)  # padded cells are 0
        if self.pool_side == 0:
            if grid_mask is None:
                return grid.flatten(2).amax(2)  # [B, C]
            lowest = torch.finfo(grid.dtype).min
            filled = grid.masked_fill(~grid_mask.unsqueeze(1), lowest)
            return filled.flatten(2).amax(2)  # [B, C]
        side = self.pool_side
        if grid_mask is None or bool(grid_mask.all()):
            return nn.functional.adaptive_avg_pool2d(grid, (side, side)).flatten(1)  # [B, C*s*s]
        return pool_real_extent(grid, grid_mask, side)  # [B, C*s*s]

    def forward(
        self,
        grid: Tensor,
        grid_mask: Tensor | None,
        question: Tensor,
        question_mask: Tensor,
        question_vector: Tensor,
    ) -> Tensor:
        batch = grid.shape[0]
        cells = grid.flatten(2).transpose(1, 2)  # [B, H * W, C]
        if grid_mask is None:
            cell_mask = cells.new_ones(cells.shape[:2], dtype=torch.bool)  # [B, H * W]
        else:
            cell_mask = grid_mask.flatten(1).bool()  # [B, H * W]
        features = {
            CONTEXT: EncoderOutput(cells, self.flatten(self.pool(grid, grid_mask)), cell_mask),
            QUESTION: EncoderOutput(question, question_vector, question_mask.bool()),
        }
        present = torch.ones(batch, dtype=torch.bool, device=grid.device)  # [B]
        fused = self.fusion(features, {CONTEXT: present, QUESTION: present})  # [B, D]
        logits: Tensor = self.mlp(fused)  # [B, A]
        return logits


def pool_real_extent(grid: Tensor, grid_mask: Tensor, side: int) -> Tensor:
    """grid [B, C, H, W] whose real cells are the top-left (h_b x w_b) block of each row's
    mask [B, H, W] -> [B, C * side * side]: each row adaptive-average-pooled over its own
    block, as it would be alone. Rows sharing an extent are pooled together (a batch of
    clips has a few distinct lengths), so it costs a handful of pooling calls."""
    heights = grid_mask.any(dim=2).sum(dim=1).clamp(min=1)  # [B] rows holding a real cell
    widths = grid_mask.any(dim=1).sum(dim=1).clamp(min=1)  # [B] columns holding a real cell
    extents, group = torch.unique(torch.stack([heights, widths], 1), dim=0, return_inverse=True)
    pieces, order = [], []
    for g, (height, width) in enumerate(extents.tolist()):
        rows = (group == g).nonzero().squeeze(1)  # [b] the rows of this extent
        cropped = grid[rows, :, :height, :width]  # [b, C, h, w]
        pieces.append(nn.functional.adaptive_avg_pool2d(cropped, (side, side)).flatten(1))
        order.append(rows)
    pooled = torch.cat(pieces)  # [B, C*s*s], rows grouped by extent
    return pooled[torch.argsort(torch.cat(order))]  # [B, C*s*s], rows in batch order
