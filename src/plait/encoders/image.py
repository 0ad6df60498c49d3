"""From-scratch image encoders on normalised `pixel_values` [B, C, H, W] (C = 1 or 3).

Both return the positions of their final feature map as the sequence, so attention-based
fusions can look at image regions, and the mean of those positions as the pooled vector.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from plait.config import EncoderConfig
from plait.encoders.base import Encoder, EncoderOutput, masked_max, masked_mean


def conv_block(
    in_channels: int, out_channels: int, kernel: int = 3, ceil_mode: bool = True
) -> nn.Sequential:
    """Conv-BN-ReLU-MaxPool(2): halves H and W (`ceil_mode` keeps a size-1 side at 1)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=ceil_mode),
    )


def widths(dim: int, blocks: int, smallest: int) -> list[int]:
    """Channel widths doubling block by block up to `dim` (never below `smallest`)."""
    return [max(smallest, dim >> (blocks - 1 - i)) for i in range(blocks - 1)] + [dim]


def lenet_depth(size: int) -> int:
    """Blocks of a LeNet-style stack: enough halvings to shrink `size` to about 1."""
    return max(1, int(math.log2(size)))


def lenet_stack(in_channels: int, dim: int, size: int) -> nn.Sequential:
    """LeNet-style stack: a 5x5 conv then 3x3 convs, each followed by BN-ReLU-MaxPool(2).

    Depth follows the input size (`lenet_depth`) and widths double up to `dim`, which
    reproduces the AV-MNIST reference encoders: 28x28 images with dim 48 give widths
    6-12-24-48 and a 1x1 map; 112x112 spectrograms with dim 192 give 6-...-192 and 1x1.
    """
    channels = widths(dim, lenet_depth(size), smallest=4)
    blocks, previous = [], in_channels
    for i, width in enumerate(channels):
        blocks.append(conv_block(previous, width, kernel=5 if i == 0 else 3, ceil_mode=False))
        previous = width
    return nn.Sequential(*blocks)


def map_side(size: int, blocks: int, ceil: bool = True) -> int:
    """Side of the feature map after `blocks` halvings of `size` (rounding up or down)."""
    for _ in range(blocks):
        size = -(-size // 2) if ceil else size // 2
    return size


def describe_cnn(channels: list[int], size: int, pooled: str, ceil: bool = True) -> str:
    """One line for the run log: widths per block, the map size, how it is pooled."""
    side = map_side(size, len(channels) - 1, ceil)
    return (
        f"{len(channels) - 1} conv blocks, widths {'-'.join(map(str, channels))}, "
        f"map {size}x{size} -> {side}x{side}, {pooled}"
    )


def _positions(features: Tensor, pooling: str) -> EncoderOutput:
    """Feature map [B, D, H, W] -> sequence of its H * W positions and their pooled vector."""
    sequence = features.flatten(2).transpose(1, 2)  # [B, H * W, D]
    mask = sequence.new_ones(sequence.shape[:2], dtype=torch.bool)  # [B, H * W]
    pool = masked_max if pooling == "max" else masked_mean
    return EncoderOutput(sequence, pool(sequence, mask), mask)


class ImageCNNEncoder(Encoder):
    """`config.layers` Conv-BN-ReLU-MaxPool blocks, widths doubling up to `dim`
    (`widths`: block i of L has max(16, dim / 2 ** (L - 1 - i)) channels), each halving
    the map; `dim: auto` / `layers: auto` follow the image size (`plait.config.auto_cnn_size`).

    Pooling: max over the final positions (`auto`, `max`): a small object anywhere in the
    picture still shows; `mean` (or `cls`) for their mean.
    """

    def __init__(self, config: EncoderConfig, channels: int, image_size: int) -> None:
        super().__init__()
        self.output_dim = config.dim
        self.pooling = "mean" if config.pooling in ("mean", "cls") else "max"
        blocks, previous = [], channels
        sizes = widths(config.dim, config.layers, smallest=16)
        for width in sizes:
            blocks.append(conv_block(previous, width))
            previous = width
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(config.dropout)
        pooled = "max" if self.pooling == "max" else "mean"
        self.summary = describe_cnn([channels, *sizes], image_size, f"{pooled} of its positions")

    def forward(self, pixel_values: Tensor, **_: Tensor) -> EncoderOutput:
        features = self.dropout(self.features(pixel_values))  # [B, D, H', W']
        return _positions(features, self.pooling)


class LeNetImageEncoder(Encoder):
    """LeNet-style encoder for small images such as MNIST digits (see `lenet_stack`).

    `config.layers` is not used: the depth follows `image_size`.
    """

    def __init__(self, config: EncoderConfig, channels: int, image_size: int) -> None:
        super().__init__()
        self.output_dim = config.dim
        self.pooling = config.pooling
        self.features = lenet_stack(channels, config.dim, image_size)
        self.dropout = nn.Dropout(config.dropout)
        sizes = [channels, *widths(config.dim, lenet_depth(image_size), smallest=4)]
        pooled = "max" if self.pooling == "max" else "mean"
        self.summary = describe_cnn(sizes, image_size, f"{pooled} of its positions", ceil=False)

    def forward(self, pixel_values: Tensor, **_: Tensor) -> EncoderOutput:
        features = self.dropout(self.features(pixel_values))  # [B, D, H', W']
        return _positions(features, self.pooling)
