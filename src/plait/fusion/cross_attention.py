"""ViLBERT-style co-attention over the modalities' token sequences."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from plait.config import CrossAttentionOptions
from plait.encoders.base import EncoderOutput, masked_mean
from plait.fusion.base import Fusion


class _CoAttentionBlock(nn.Module):
    """One stream's block: cross-attention to other streams, then feed-forward (post-LN)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: Tensor, keys: Tensor, ignore: Tensor) -> Tensor:
        # query [B, T, dim], keys [B, S, dim], ignore [B, S] (True = not attended to)
        attended, _ = self.attn(query, keys, keys, key_padding_mask=ignore, need_weights=False)
        x = self.norm1(query + self.dropout(attended))  # [B, T, dim]
        return self.norm2(x + self.dropout(self.ff(x)))  # [B, T, dim]


class CrossAttentionFusion(Fusion):
    """Co-attention transformer (Lu et al. 2019, ViLBERT), generalised to N modalities.

    Each sequence is projected to `options.dim` plus a learned modality-type embedding; in
    each of `options.layers` layers every modality's tokens attend to the tokens of all
    OTHER modalities (to its own tokens when it is the only modality), then a feed-forward,
    each with a residual and LayerNorm. Output: the mean over present modalities of each
    one's masked-mean-pooled sequence.

    Missing modality: its tokens are zeroed and masked out of every key set
    (`key_padding_mask` = not (mask and presence)) and it is left out of the output mean.
    A learned "null" key is always appended, so no query ever has every key masked (no
    NaN). A sample with nothing present gets zeros.
    """

    Options = CrossAttentionOptions

    def __init__(
        self, input_dims: dict[str, int], options: CrossAttentionOptions, num_outputs: int
    ) -> None:
        super().__init__(input_dims, options, num_outputs)
        if options.dim % options.heads:
            raise ValueError(
                f"cross_attention: dim ({options.dim}) must be divisible by heads ({options.heads})"
            )
        n, dim = len(input_dims), options.dim
        self.proj = nn.ModuleList(nn.Linear(d, dim) for d in input_dims.values())
        self.type_embedding = nn.Parameter(torch.randn(n, dim) * 0.02)  # [M, dim]
        self.null_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)  # [1, 1, dim]
        self.blocks = nn.ModuleList(
            nn.ModuleList(_CoAttentionBlock(dim, options.heads, options.dropout) for _ in range(n))
            for _ in range(options.layers)
        )
        self.dropout = nn.Dropout(options.dropout)
        self.output_dim = dim

    def forward(self, features: dict[str, EncoderOutput], presence: dict[str, Tensor]) -> Tensor:
        valid, streams = [], []
        for i, name in enumerate(self.modalities):
            out = features[name]
            ok = out.mask.bool() & presence[name].bool().unsqueeze(-1)  # [B, T_m]
            seq = torch.where(ok.unsqueeze(-1), out.sequence, 0.0)  # [B, T_m, D_m]
            valid.append(ok)
            streams.append(self.proj[i](seq) + self.type_embedding[i])  # [B, T_m, dim]
        batch = streams[0].shape[0]
        null = self.null_token.expand(batch, 1, -1)  # [B, 1, dim]
        null_ok = valid[0].new_ones(batch, 1)  # [B, 1]
        n = len(streams)
        for layer in self.blocks:
            layer = cast(nn.ModuleList, layer)  # one _CoAttentionBlock per modality
            updated = []
            for i, block in enumerate(layer):
                others = [j for j in range(n) if j != i] or [i]
                keys = torch.cat([streams[j] for j in others] + [null], 1)  # [B, S, dim]
                ok = torch.cat([valid[j] for j in others] + [null_ok], 1)  # [B, S]
                updated.append(block(streams[i], keys, ~ok))  # [B, T_i, dim]
            streams = updated
        pooled = torch.stack(
            [masked_mean(s, v) for s, v in zip(streams, valid, strict=True)], 1
        )  # [B, M, dim]
        present = torch.stack([v.any(1) for v in valid], 1).unsqueeze(-1)  # [B, M, 1]
        pooled = torch.where(present, pooled, 0.0)  # [B, M, dim]
        count = present.sum(1).clamp_min(1).to(pooled.dtype)  # [B, 1]
        return self.dropout(pooled.sum(1) / count)  # [B, dim]
