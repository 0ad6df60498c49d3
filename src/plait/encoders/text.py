"""From-scratch text encoders over Plait's own vocabulary (0 = padding, 1 = unknown).

All three read `input_ids` [B, T] and `attention_mask` [B, T] and never let the content of
padded positions reach the pooled vector, so a sample padded more or less gives the same
result. A row with no tokens at all (a missing sample's placeholder) stays finite.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from plait.config import EncoderConfig
from plait.encoders.base import Encoder, EncoderOutput, masked_max, masked_mean


def _mask_of(input_ids: Tensor, attention_mask: Tensor | None) -> Tensor:
    """[B, T] bool mask of real tokens; without an attention mask, id 0 means padding."""
    if attention_mask is None:
        return input_ids != 0
    return attention_mask.bool()


def _pool(sequence: Tensor, mask: Tensor, pooling: str) -> Tensor:
    """`max` -> masked max, anything else -> masked mean; [B, T, D] -> [B, D]."""
    return masked_max(sequence, mask) if pooling == "max" else masked_mean(sequence, mask)


class TextCNNEncoder(Encoder):
    """Kim (2014): word embeddings, parallel convolutions of widths 3/4/5, max over time.

    The `dim` output channels are split across the three widths; `sequence` holds the
    concatenated conv features of every position and `pooled` their masked max.
    """

    widths = (3, 4, 5)

    def __init__(self, config: EncoderConfig, vocab_size: int, max_length: int) -> None:
        super().__init__()
        self.output_dim = config.dim
        self.embedding = nn.Embedding(vocab_size, config.dim, padding_idx=0)
        split = [config.dim // 3 + (i < config.dim % 3) for i in range(3)]
        self.convs = nn.ModuleList(
            nn.Conv1d(config.dim, channels, k, padding=k // 2)
            for k, channels in zip(self.widths, split, strict=True)
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, **_: Tensor
    ) -> EncoderOutput:
        mask = _mask_of(input_ids, attention_mask)  # [B, T]
        length = input_ids.shape[1]
        x = self.embedding(input_ids) * mask.unsqueeze(-1)  # [B, T, D], pads zeroed
        x = self.dropout(x).transpose(1, 2)  # [B, D, T]
        feats = [torch.relu(conv(x))[:, :, :length] for conv in self.convs]  # [B, D_k, T]
        sequence = torch.cat(feats, dim=1).transpose(1, 2)  # [B, T, D]
        return EncoderOutput(sequence, masked_max(sequence, mask), mask)


class TextGRUEncoder(Encoder):
    """Bidirectional GRU over packed sequences, so padding is never read.

    Pooling: `mean`/`auto` masked mean, `max` masked max, `cls` the final hidden states of
    both directions (forward after the last real token, backward after the first).
    """

    def __init__(self, config: EncoderConfig, vocab_size: int, max_length: int) -> None:
        super().__init__()
        self.output_dim = config.dim
        self.pooling = config.pooling
        hidden = (config.dim + 1) // 2
        self.embedding = nn.Embedding(vocab_size, config.dim, padding_idx=0)
        self.gru = nn.GRU(
            config.dim,
            hidden,
            num_layers=config.layers,
            batch_first=True,
            bidirectional=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        # an odd dim gives 2 * hidden = dim + 1 features; project back to dim
        self.proj = nn.Identity() if 2 * hidden == config.dim else nn.Linear(2 * hidden, config.dim)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, **_: Tensor
    ) -> EncoderOutput:
        mask = _mask_of(input_ids, attention_mask)  # [B, T]
        x = self.dropout(self.embedding(input_ids))  # [B, T, D]
        lengths = mask.sum(1).clamp_min(1)  # [B]; empty rows read one (ignored) token
        if torch.compiler.is_exporting():  # torch.export cannot trace packed sequences
            sequence, last = _gru_unpacked(self.gru, x, lengths)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, h_n = self.gru(packed)
            sequence, _lengths = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            last = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # [B, 2 * hidden]
        sequence = self.proj(sequence)  # [B, T, D]
        if self.pooling == "cls":
            pooled = self.proj(last) * mask.any(1, keepdim=True)  # [B, D]
        else:
            pooled = _pool(sequence, mask, self.pooling)
        return EncoderOutput(sequence, pooled, mask)


def _gru_unpacked(gru: nn.GRU, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """A bidirectional `gru` over right-padded `x` [B, T, D] with `lengths` [B], without
    packed sequences (which `torch.export` cannot trace), for ONNX export.

    Layer by layer: the forward direction reads the padded rows as they are (padding
    comes after every real token), the backward one reads each row reversed within its
    length. Real positions match the packed run; padded ones hold values the callers mask.
    Returns (sequence [B, T, 2H], final states of both directions [B, 2H]).
    """
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # [1, T]
    flip = lengths.unsqueeze(1) - 1 - steps  # [B, T], row-wise reversal of the real part
    flip = torch.where(flip < 0, steps, flip).unsqueeze(-1)  # padding stays in place
    out = x
    last = x.new_zeros(0)
    for layer in range(gru.num_layers):
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        forward_w = [getattr(gru, f"{n}_l{layer}") for n in names]
        backward_w = [getattr(gru, f"{n}_l{layer}_reverse") for n in names]
        h0 = out.new_zeros(1, out.shape[0], gru.hidden_size)  # [1, B, H]
        ahead, _ = torch._VF.gru(out, h0, forward_w, True, 1, 0.0, False, False, True)
        reversed_in = out.gather(1, flip.expand(-1, -1, out.shape[2]))  # [B, T, D_in]
        back, _ = torch._VF.gru(reversed_in, h0, backward_w, True, 1, 0.0, False, False, True)
        back = back.gather(1, flip.expand(-1, -1, back.shape[2]))  # [B, T, H], order restored
        out = torch.cat([ahead, back], dim=-1)  # [B, T, 2H]
        end = (lengths - 1).view(-1, 1, 1).expand(-1, 1, gru.hidden_size)  # [B, 1, H]
        last = torch.cat([ahead.gather(1, end).squeeze(1), back[:, 0]], dim=-1)  # [B, 2H]
    return out, last


class TextTransformerEncoder(Encoder):
    """A small Transformer encoder with learned positions and a padding mask.

    Pooling: `mean`/`auto` masked mean, `max` masked max, `cls` a learned token prepended
    before the Transformer (its output is `pooled`; `sequence` holds the tokens only).
    """

    def __init__(self, config: EncoderConfig, vocab_size: int, max_length: int) -> None:
        super().__init__()
        self.output_dim = config.dim
        self.pooling = config.pooling
        self.max_length = max_length
        self.embedding = nn.Embedding(vocab_size, config.dim, padding_idx=0)
        self.positions = nn.Parameter(torch.randn(1, max_length, config.dim) * 0.02)
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

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, **_: Tensor
    ) -> EncoderOutput:
        mask = _mask_of(input_ids, attention_mask)  # [B, T]
        length = input_ids.shape[1]
        if length > self.max_length:
            raise ValueError(f"{length} tokens exceed max_length {self.max_length}")
        x = self.embedding(input_ids) + self.positions[:, :length]  # [B, T, D]
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)  # [B, 1 + T, D]
            attend = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)  # [B, 1 + T]
        else:
            # an all-padding row attends to its first token, so no NaN; built without an
            # in-place write, which the TorchScript ONNX exporter cannot translate
            first = mask[:, :1] | ~mask.any(1, keepdim=True)  # [B, 1]
            attend = torch.cat([first, mask[:, 1:]], dim=1)  # [B, T]
        out = self.norm(self.encoder(x, src_key_padding_mask=~attend))  # [B, T(+1), D]
        if self.cls is not None:
            return EncoderOutput(out[:, 1:], out[:, 0], mask)
        return EncoderOutput(out, _pool(out, mask, self.pooling), mask)
