"""A relation network (Santoro et al. 2017) that is cheap enough to train on a CPU.

The grid's cells are the objects (features + coordinates). The network `g` scores every
ordered pair of objects together with the question, the scores are summed over pairs, and
`f` reads the answer from that sum, so "how many things share the cube's shape?" is a sum
of pairwise facts.

The cost of an all-pairs network is N^2 passes of `g`. Two things make it cheap here:
- `g`'s first layer is decomposed: W [o_i; o_j; q] = W_i o_i + W_j o_j + W_q q, so the
  widest matmul runs once per object (O(N)), and the pairs are a broadcast add;
- `pool` averages the grid down to `pool` x `pool` cells first (16 or 25 objects).
`bf16: true` runs the pair layers under bfloat16 autocast (faster on CPUs with AMX).
"""

from __future__ import annotations

import contextlib
from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

from plait.heads.vqa.base import VqaHead, VqaHeadOptions
from plait.heads.vqa.grid import coordinates, full_mask, pool_grid


class RelationOptions(VqaHeadOptions):
    """`pool`: average the grid to `pool` x `pool` objects first (None: every cell is an
    object); `width`: g's width; `g_layers`: g's layers (the first is decomposed);
    `hidden`: f's width; `dropout`: in f; `bf16`: bfloat16 autocast for the pairs."""

    pool: int | None = Field(5, ge=1)
    width: int = Field(128, ge=1)
    g_layers: int = Field(2, ge=1)
    hidden: int = Field(256, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    bf16: bool = False


class RelationHead(VqaHead):
    """grid cells as objects, every ordered pair scored with the question, summed, classified."""

    Options: ClassVar[type[VqaHeadOptions]] = RelationOptions

    def __init__(
        self, grid_channels: int, question_dim: int, num_answers: int, options: RelationOptions
    ) -> None:
        super().__init__(grid_channels, question_dim, num_answers, options)
        width = options.width
        self.left = nn.Linear(grid_channels + 2, width)  # W_i o_i (carries g's first bias)
        self.right = nn.Linear(grid_channels + 2, width, bias=False)  # W_j o_j
        self.ask = nn.Linear(question_dim, width, bias=False)  # W_q q
        self.g = nn.Sequential(
            *(
                layer
                for _ in range(options.g_layers - 1)
                for layer in (nn.Linear(width, width), nn.ReLU())
            )
        )
        self.f = nn.Sequential(
            nn.Linear(width, options.hidden),
            nn.ReLU(),
            nn.Dropout(options.dropout),
            nn.Linear(options.hidden, num_answers),
        )

    def forward(
        self,
        grid: Tensor,
        grid_mask: Tensor | None,
        question: Tensor,
        question_mask: Tensor,
        question_vector: Tensor,
    ) -> Tensor:
        options: RelationOptions = self.options
        mask = full_mask(grid, grid_mask)  # (B, H, W)
        if options.pool is not None:
            grid, mask = pool_grid(grid, mask, options.pool)  # (B, C, s, s), (B, s, s)
        objects = torch.cat([grid, coordinates(mask).to(grid.dtype)], dim=1)  # (B, C+2, H, W)
        objects = objects.flatten(2).transpose(1, 2)  # (B, N, C+2)
        real = mask.flatten(1)  # (B, N)
        pair_real = (real[:, :, None] & real[:, None, :]).to(grid.dtype)  # (B, N, N)
        # `bf16: false` keeps whatever precision the caller runs (no nested autocast)
        bf16 = torch.autocast(grid.device.type, dtype=torch.bfloat16)
        with bf16 if options.bf16 else contextlib.nullcontext():
            first = self.left(objects)[:, :, None] + self.right(objects)[:, None, :]  # (B,N,N,G)
            pairs = self.g(torch.relu(first + self.ask(question_vector)[:, None, None]))
        pairs = pairs.float() * pair_real[..., None]  # (B, N, N, G), padding pairs zeroed
        pooled = pairs.sum(dim=(1, 2)) / real.sum(dim=1, keepdim=True).to(pairs.dtype)  # (B, G)
        return self.f(pooled.to(question_vector.dtype))  # (B, A)
