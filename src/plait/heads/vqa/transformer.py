"""A cross-attention transformer answer head.

The grid's cells (with learned row and column embeddings) first attend to each other
(`grid_layers`), which relates objects; then a CLS token and the question's words attend
to each other and, through cross-attention, to the cells (`layers`), which finds the
objects the question names. The CLS token's final state is classified.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from plait.errors import ConfigError
from plait.heads.vqa.base import VqaHead, VqaHeadOptions
from plait.heads.vqa.grid import full_mask


class TransformerOptions(VqaHeadOptions):
    """`dim`: model width; `heads`: attention heads; `grid_layers`: self-attention layers
    over the cells; `layers`: question layers (self + cross-attention); `max_grid`: the
    most rows / columns the position embeddings cover; `dropout`: in every layer."""

    dim: int = Field(128, ge=1)
    heads: int = Field(4, ge=1)
    grid_layers: int = Field(1, ge=0)
    layers: int = Field(2, ge=1)
    max_grid: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> TransformerOptions:
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of heads ({self.heads})")
        return self


class TransformerHead(VqaHead):
    """grid cells (+ 2-D positions) and [CLS; question tokens] -> CLS state -> logits."""

    Options: ClassVar[type[VqaHeadOptions]] = TransformerOptions

    def __init__(
        self,
        grid_channels: int,
        question_dim: int,
        num_answers: int,
        options: TransformerOptions,
    ) -> None:
        super().__init__(grid_channels, question_dim, num_answers, options)
        dim = options.dim
        self.cells = nn.Linear(grid_channels, dim)
        self.rows = nn.Embedding(options.max_grid, dim)
        self.cols = nn.Embedding(options.max_grid, dim)
        self.words = nn.Linear(question_dim, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.grid_encoder = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, options.heads, 4 * dim, options.dropout, batch_first=True, norm_first=True
            )
            for _ in range(options.grid_layers)
        )
        self.decoder = nn.ModuleList(
            nn.TransformerDecoderLayer(
                dim, options.heads, 4 * dim, options.dropout, batch_first=True, norm_first=True
            )
            for _ in range(options.layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, num_answers)

    def forward(
        self,
        grid: Tensor,
        grid_mask: Tensor | None,
        question: Tensor,
        question_mask: Tensor,
        question_vector: Tensor,
    ) -> Tensor:
        options: TransformerOptions = self.options
        batch, _, height, width = grid.shape
        if max(height, width) > options.max_grid:
            raise ConfigError(
                f"a {height}x{width} grid is larger than vqa.head_options.max_grid "
                f"({options.max_grid}); raise max_grid or pool the context first"
            )
        mask = full_mask(grid, grid_mask).flatten(1)  # (B, N)
        rows = torch.arange(height, device=grid.device)  # (H,)
        cols = torch.arange(width, device=grid.device)  # (W,)
        position = self.rows(rows)[:, None] + self.cols(cols)[None, :]  # (H, W, d)
        cells = self.cells(grid.flatten(2).transpose(1, 2)) + position.flatten(0, 1)  # (B,N,d)
        cell_padding = ~mask  # (B, N) True: padding
        for layer in self.grid_encoder:
            cells = layer(cells, src_key_padding_mask=cell_padding)  # (B, N, d)
        words = self.words(question)  # (B, T, d)
        query = torch.cat([self.cls.expand(batch, -1, -1), words], dim=1)  # (B, 1+T, d)
        real_words = torch.cat([mask.new_ones(batch, 1), question_mask.bool()], dim=1)
        for layer in self.decoder:
            query = layer(
                query,
                cells,
                tgt_key_padding_mask=~real_words,  # (B, 1+T)
                memory_key_padding_mask=cell_padding,  # (B, N)
            )
        return self.out(self.norm(query[:, 0]))  # (B, A)
