"""Helpers every grid-reading VQA head shares: where each cell is, and which cells are real.

Coordinates are measured over each map's *real* extent (from `grid_mask`), so a map padded
to the batch's size gets the same coordinates on its real cells as it would alone; the
padding then cannot change any head's answer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def full_mask(grid: Tensor, grid_mask: Tensor | None) -> Tensor:
    """grid_mask (B, H, W) bool, or all True when the batch has no padding."""
    batch, _, height, width = grid.shape
    if grid_mask is None:
        return torch.ones(batch, height, width, dtype=torch.bool, device=grid.device)
    return grid_mask.bool()


def coordinates(mask: Tensor) -> Tensor:
    """mask (B, H, W) -> (B, 2, H, W): row and column in [-1, 1] over each map's real cells.

    Real cells are the top-left block (padding is appended), so the real extent is the
    number of rows / columns holding any real cell.
    """
    _, height, width = mask.shape
    rows = mask.any(dim=2).sum(dim=1).clamp(min=2).to(torch.float32)  # (B,)
    cols = mask.any(dim=1).sum(dim=1).clamp(min=2).to(torch.float32)  # (B,)
    row_index = torch.arange(height, device=mask.device, dtype=torch.float32)  # (H,)
    col_index = torch.arange(width, device=mask.device, dtype=torch.float32)  # (W,)
    row = row_index[None, :] / (rows[:, None] - 1) * 2 - 1  # (B, H)
    col = col_index[None, :] / (cols[:, None] - 1) * 2 - 1  # (B, W)
    row_map = row[:, :, None].expand(-1, height, width)  # (B, H, W)
    col_map = col[:, None, :].expand(-1, height, width)  # (B, H, W)
    return torch.stack([row_map, col_map], dim=1) * mask[:, None]  # (B, 2, H, W)


def pool_grid(grid: Tensor, mask: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Average real cells into a `size` x `size` map: (B, C, s, s) and its mask (B, s, s).

    A pooled cell mixes only real cells; one with none is padding. A map already no larger
    than `size` is returned as it is.
    """
    if grid.shape[2] <= size and grid.shape[3] <= size:
        return grid, mask
    weight = mask[:, None].to(grid.dtype)  # (B, 1, H, W)
    total = F.adaptive_avg_pool2d(grid * weight, size)  # (B, C, s, s)
    share = F.adaptive_avg_pool2d(weight, size)  # (B, 1, s, s)
    pooled = total / share.clamp(min=1e-6)  # (B, C, s, s)
    return pooled, share[:, 0] > 0


def masked_max(features: Tensor, mask: Tensor) -> Tensor:
    """features (B, C, H, W) -> (B, C): the largest value over real cells."""
    hidden = features.masked_fill(~mask[:, None], float("-inf"))  # (B, C, H, W)
    return hidden.amax(dim=(2, 3))  # (B, C)
