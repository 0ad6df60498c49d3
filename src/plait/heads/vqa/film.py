"""FiLM (Perez et al. 2018): the question steers every conv block of the picture.

Each residual block normalises its feature map, then scales and shifts every channel by a
gamma and beta predicted from the question vector, so "what colour is the thing left of
the cube?" picks which features survive before anything is pooled. Coordinate channels
give the convolutions absolute position, which relational questions need.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

from plait.heads.vqa.base import VqaHead, VqaHeadOptions
from plait.heads.vqa.grid import coordinates, full_mask, masked_max


class FilmOptions(VqaHeadOptions):
    """`channels`: width of every block; `blocks`: FiLM-ed residual blocks; `hidden`:
    the classifier's hidden width; `dropout`: before the classifier's last layer."""

    channels: int = Field(64, ge=1)
    blocks: int = Field(4, ge=1)
    hidden: int = Field(256, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class FilmBlock(nn.Module):
    """x (B, C, H, W), gamma/beta (B, C) -> x + relu(film(norm(conv3(relu(conv1(x))))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(channels + 2, channels, 1)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.LayerNorm(channels, elementwise_affine=False)

    def forward(
        self, x: Tensor, coords: Tensor, real: Tensor, gamma: Tensor, beta: Tensor
    ) -> Tensor:
        """`real` (B, 1, H, W) zeroes padded cells before the 3x3 conv reads them."""
        residual = torch.relu(self.conv_in(torch.cat([x, coords], dim=1))) * real
        hidden = self.conv(residual)  # (B, C, H, W)
        hidden = self.norm(hidden.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # per cell
        hidden = gamma[:, :, None, None] * hidden + beta[:, :, None, None]  # FiLM
        return residual + torch.relu(hidden)  # (B, C, H, W)


class FilmHead(VqaHead):
    """grid + question vector -> logits through `blocks` FiLM-ed residual conv blocks."""

    Options: ClassVar[type[VqaHeadOptions]] = FilmOptions

    def __init__(
        self, grid_channels: int, question_dim: int, num_answers: int, options: FilmOptions
    ) -> None:
        super().__init__(grid_channels, question_dim, num_answers, options)
        width = options.channels
        self.stem = nn.Conv2d(grid_channels + 2, width, 1)
        self.blocks = nn.ModuleList(FilmBlock(width) for _ in range(options.blocks))
        # one linear predicts every block's gamma and beta: (B, blocks * 2 * C)
        self.film = nn.Linear(question_dim, options.blocks * 2 * width)
        self.project = nn.Conv2d(width + 2, options.hidden, 1)
        self.classify = nn.Sequential(
            nn.Linear(options.hidden, options.hidden),
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
        mask = full_mask(grid, grid_mask)  # (B, H, W)
        real = mask[:, None].to(grid.dtype)  # (B, 1, H, W)
        coords = coordinates(mask).to(grid.dtype)  # (B, 2, H, W)
        x = torch.relu(self.stem(torch.cat([grid * real, coords], dim=1))) * real
        params = self.film(question_vector).view(len(grid), len(self.blocks), 2, -1)
        gamma, beta = 1 + params[:, :, 0], params[:, :, 1]  # (B, blocks, C) each
        for index, block in enumerate(self.blocks):
            # padding is kept at zero, so a 3x3 conv sees zeros past the real cells
            # exactly as it would on an unpadded map
            x = block(x, coords, real, gamma[:, index], beta[:, index]) * real  # (B,C,H,W)
        features = torch.relu(self.project(torch.cat([x, coords], dim=1)))  # (B, h, H, W)
        return self.classify(masked_max(features, mask))  # (B, A)
