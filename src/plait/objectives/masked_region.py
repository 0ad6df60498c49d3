"""Masked region modelling (MRM): hide regions of an image or spectrogram, regress them back.

The input map [B, C, H, W] (image pixels; a spectrogram's frequency x time, C = 1) is cut
into a `rows x columns` grid of regions. A fixed share of the regions of every row is
hidden (set to 0, the mean of normalised inputs) and the model predicts, for each region,
the mean of each channel of the original input there: UNITER's masked region feature
regression (MRFR) with the region's mean values as its feature. The target needs no
pretrained detector or codebook, so it works for towers trained from scratch, and a
mean colour (or band energy) is something the other modality can describe ("a red circle
on the left", "a high tone"). Only hidden regions count in the loss.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor


def region_edges(size: int, parts: int) -> list[int]:
    """Boundaries of `parts` near-equal slices of `size` (at most `size` slices)."""
    parts = max(1, min(parts, size))
    return [round(i * size / parts) for i in range(parts + 1)]


def region_means(inputs: Tensor, grid: tuple[int, int]) -> Tensor:
    """Mean of each channel in each region: inputs [B, C, H, W] -> [B, G, C], G = rows * cols
    (row-major; rows or columns beyond the map's own size are dropped)."""
    rows = region_edges(inputs.shape[2], grid[0])
    cols = region_edges(inputs.shape[3], grid[1])
    means = [
        inputs[:, :, top:bottom, left:right].mean(dim=(2, 3))  # [B, C]
        for top, bottom in pairwise(rows)
        for left, right in pairwise(cols)
    ]
    return torch.stack(means, dim=1)  # [B, G, C]


def region_count(inputs: Tensor, grid: tuple[int, int]) -> int:
    """How many regions `grid` makes on `inputs` [B, C, H, W]."""
    return (len(region_edges(inputs.shape[2], grid[0])) - 1) * (
        len(region_edges(inputs.shape[3], grid[1])) - 1
    )


def choose_regions(
    batch: int, regions: int, ratio: float, generator: torch.Generator | None = None
) -> Tensor:
    """[B, G] bool: exactly `round(ratio * G)` regions per row (at least 1, at most G - 1)."""
    count = min(max(1, round(ratio * regions)), max(1, regions - 1))
    order = torch.rand(batch, regions, generator=generator).argsort(dim=1)  # [B, G]
    chosen = torch.zeros(batch, regions, dtype=torch.bool)
    chosen.scatter_(1, order[:, :count], True)
    return chosen


def mask_regions(
    inputs: Tensor,
    grid: tuple[int, int],
    ratio: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Hide `ratio` of the regions of each row.

    Args:
        inputs: [B, C, H, W] (a [B, H, W] map is read as C = 1).

    Returns:
        (masked inputs, same shape as `inputs`, hidden regions set to 0;
         targets [B, G, C]: each region's per-channel mean of the original input;
         chosen [B, G] bool: the hidden regions).
    """
    maps = inputs.unsqueeze(1) if inputs.dim() == 3 else inputs  # [B, C, H, W]
    if maps.dim() != 4:
        raise ValueError(f"masked region modelling needs a [B, C, H, W] map, got {inputs.shape}")
    targets = region_means(maps, grid).detach()  # [B, G, C]
    chosen = choose_regions(len(maps), targets.shape[1], ratio, generator).to(maps.device)
    rows = region_edges(maps.shape[2], grid[0])
    cols = region_edges(maps.shape[3], grid[1])
    keep = torch.ones_like(maps[:, :1])  # [B, 1, H, W]
    index = 0
    for top, bottom in pairwise(rows):
        for left, right in pairwise(cols):
            hide = chosen[:, index].view(-1, 1, 1, 1).to(maps.dtype)  # [B, 1, 1, 1]
            keep[:, :, top:bottom, left:right] = 1 - hide
            index += 1
    masked = maps * keep  # [B, C, H, W]
    return masked.view_as(inputs), targets, chosen


def masked_region_loss(predictions: Tensor, targets: Tensor, chosen: Tensor) -> Tensor:
    """Mean squared error over the hidden regions only: predictions, targets [B, G, C],
    chosen [B, G] bool."""
    if not chosen.any():
        return predictions.sum() * 0.0
    return F.mse_loss(predictions[chosen], targets[chosen])
