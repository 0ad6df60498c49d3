"""The scratch caption decoder: a small Transformer decoder that writes a caption token by
token, attending to the source encoder's whole sequence (image patches / regions or
audio frames) through cross-attention, as in the Transformer captioners of the
literature (and `nn.TransformerDecoder`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TransformerCaptionDecoder(nn.Module):
    """tokens [B, L] (start token first) + memory [B, T, Dm] -> next-token logits [B, L, V].

    Causal self-attention over the tokens so far, cross-attention to the memory (its
    padding masked out), pre-norm layers; learned positions up to `max_positions`.
    """

    def __init__(
        self,
        vocab_size: int,
        memory_dim: int,
        *,
        dim: int = 128,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
        max_positions: int = 256,
    ) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.embed = nn.Embedding(vocab_size, dim)
        self.position = nn.Embedding(max_positions, dim)
        self.memory = nn.Linear(memory_dim, dim)
        layer = nn.TransformerDecoderLayer(
            dim, heads, 4 * dim, dropout, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab_size)

    def forward(self, tokens: Tensor, memory: Tensor, memory_mask: Tensor) -> Tensor:
        """tokens [B, L] long, memory [B, T, Dm], memory_mask [B, T] bool (True: real)."""
        length = tokens.shape[1]
        if length > self.max_positions:
            raise ValueError(f"{length} tokens; this decoder has {self.max_positions} positions")
        positions = torch.arange(length, device=tokens.device)  # [L]
        x = self.embed(tokens) + self.position(positions)  # [B, L, D]
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).triu(1)
        hidden = self.layers(
            x,
            self.memory(memory),  # [B, T, D]
            tgt_mask=causal,  # [L, L] True: may not attend
            memory_key_padding_mask=~memory_mask.bool(),  # [B, T] True: padding
        )
        return self.out(self.norm(hidden))  # [B, L, V]
