"""From-scratch audio encoders on log-mel `features` [B, 1, n_mels, frames].

Clips are padded or cropped to a fixed duration by the data layer, so every frame is
real: the mask is all True. Each encoder's sequence runs over (downsampled) time.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from plait.config import EncoderConfig
from plait.encoders.base import Encoder, EncoderOutput, masked_max, masked_mean
from plait.encoders.image import conv_block, lenet_depth, lenet_stack, map_side, widths


def _over_time(features: Tensor, pooling: str) -> EncoderOutput:
    """Map [B, D, F, T] -> frequency averaged away -> sequence [B, T, D] and pooled [B, D]."""
    sequence = features.mean(2).transpose(1, 2)  # [B, T, D]
    mask = torch.ones(sequence.shape[:2], dtype=torch.bool, device=sequence.device)  # [B, T]
    pool = masked_max if pooling == "max" else masked_mean
    return EncoderOutput(sequence, pool(sequence, mask), mask)


def sinusoids(length: int, dim: int, device: torch.device) -> Tensor:
    """Fixed sine/cosine positions [length, dim]: work for any number of frames."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)  # [L, 1]
    freqs = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )  # [ceil(dim / 2)]
    table = torch.zeros(length, dim, device=device)  # [L, D]
    table[:, 0::2] = torch.sin(position * freqs)
    table[:, 1::2] = torch.cos(position * freqs[: dim // 2])
    return table


def pad_frames(features: Tensor, min_frames: int) -> Tensor:
    """Zero-pad the time axis of [B, 1, M, T] to at least `min_frames` frames.

    Written as concatenate-then-slice, without a Python branch on T, so an exported ONNX
    graph pads by the length it is given rather than the export sample's.
    """
    frames = features.shape[-1]
    zeros = features.new_zeros((*features.shape[:-1], min_frames))  # [B, 1, M, min_frames]
    padded = torch.cat([features, zeros], dim=-1)  # [B, 1, M, T + min_frames]
    if torch.jit.is_tracing():  # the TorchScript exporter traces sizes as tensors
        end: Any = torch.max(torch.tensor(frames), torch.tensor(min_frames))
    else:
        end = torch.sym_max(frames, min_frames)
    return padded[..., :end]  # [B, 1, M, max(T, min_frames)]


class AudioCNNEncoder(Encoder):
    """2-D CNN over the spectrogram: `config.layers` Conv-BN-ReLU-MaxPool blocks.

    Each block halves frequency and time; the remaining frequency bins are averaged so
    the sequence is one vector per downsampled time step. Widths as `image_cnn`'s;
    `dim: auto` / `layers: auto` follow the smaller side of the log-mel map.
    """

    def __init__(self, config: EncoderConfig, n_mels: int) -> None:
        super().__init__()
        self.output_dim = config.dim
        self.pooling = config.pooling
        blocks, previous = [], 1
        sizes = widths(config.dim, config.layers, smallest=16)
        for width in sizes:
            blocks.append(conv_block(previous, width))
            previous = width
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(config.dropout)
        side = map_side(n_mels, config.layers)
        pooled = "max" if self.pooling == "max" else "mean"
        self.summary = (
            f"{config.layers} conv blocks, widths {'-'.join(map(str, [1, *sizes]))}, "
            f"{n_mels} mel bins -> {side}, averaged, then the {pooled} over time"
        )

    def forward(self, features: Tensor, **_: Tensor) -> EncoderOutput:
        maps = self.dropout(self.features(features))  # [B, D, F', T']
        return _over_time(maps, self.pooling)


class LeNetAudioEncoder(Encoder):
    """LeNet-style encoder for square spectrograms (112 x 112 with dim 192 in AV-MNIST).

    Depth follows `n_mels` (see `plait.encoders.image.lenet_stack`); clips shorter than
    the total downsampling are zero-padded in time. `config.layers` is not used.
    """

    def __init__(self, config: EncoderConfig, n_mels: int) -> None:
        super().__init__()
        self.output_dim = config.dim
        self.pooling = config.pooling
        self.min_frames = 2 ** lenet_depth(n_mels)
        self.features = lenet_stack(1, config.dim, n_mels)
        self.dropout = nn.Dropout(config.dropout)
        depth = lenet_depth(n_mels)
        sizes = [1, *widths(config.dim, depth, smallest=4)]
        self.summary = (
            f"{depth} conv blocks, widths {'-'.join(map(str, sizes))}, {n_mels} mel bins -> "
            f"{map_side(n_mels, depth, ceil=False)}, averaged, then the "
            f"{'max' if self.pooling == 'max' else 'mean'} over time"
        )

    def forward(self, features: Tensor, **_: Tensor) -> EncoderOutput:
        features = pad_frames(features, self.min_frames)  # [B, 1, M, max(T, min_frames)]
        maps = self.dropout(self.features(features))  # [B, D, F', T']
        return _over_time(maps, self.pooling)


class AudioTransformerEncoder(Encoder):
    """Frames -> Linear(n_mels -> dim) + sinusoidal positions -> Transformer encoder.

    Pooling: `mean`/`auto` mean over frames, `max` max, `cls` a learned token prepended
    (its output is `pooled`; `sequence` holds the frames only).
    """

    def __init__(self, config: EncoderConfig, n_mels: int) -> None:
        super().__init__()
        self.output_dim = config.dim
        self.pooling = config.pooling
        self.project = nn.Linear(n_mels, config.dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, config.dim)) if config.pooling == "cls" else None
        layer = nn.TransformerEncoderLayer(
            config.dim,
            config.heads,
            dim_feedforward=4 * config.dim,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, features: Tensor, **_: Tensor) -> EncoderOutput:
        frames = features.squeeze(1).transpose(1, 2)  # [B, T, M]
        x = self.project(frames)  # [B, T, D]
        x = x + sinusoids(x.shape[1], x.shape[2], x.device).to(x.dtype)  # [B, T, D]
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)  # [B, 1 + T, D]
        out = self.norm(self.encoder(x))  # [B, T(+1), D]
        if self.cls is not None:
            pooled, out = out[:, 0], out[:, 1:]  # [B, D], [B, T, D]
        mask = torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)  # [B, T]
        if self.cls is None:
            pooled = masked_max(out, mask) if self.pooling == "max" else masked_mean(out, mask)
        return EncoderOutput(out, pooled, mask)
