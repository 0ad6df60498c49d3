"""Language-model head for masked language modelling with another modality as context."""

from __future__ import annotations

from torch import Tensor, nn


def attention_heads(dim: int, wanted: int = 4) -> int:
    """The largest head count <= `wanted` that divides `dim`."""
    return next(h for h in range(min(wanted, dim), 0, -1) if dim % h == 0)


class MaskedLMHead(nn.Module):
    """Text token features attend to the other modality's sequence, then predict tokens.

    text [B, T, Dt] + context [B, S, Dc] -> logits [B, T, vocab]. The decoder layers use
    self-attention over the text and cross-attention into the (projected) context, so a
    masked word can be recovered from the image or sound it describes.
    """

    def __init__(
        self,
        text_dim: int,
        context_dim: int,
        vocab_size: int,
        layers: int = 1,
        heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.context = nn.Linear(context_dim, text_dim)
        layer = nn.TransformerDecoderLayer(
            text_dim,
            attention_heads(text_dim, heads),
            dim_feedforward=2 * text_dim,
            dropout=dropout,
            batch_first=True,
        )
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(text_dim)
        self.vocab = nn.Linear(text_dim, vocab_size)

    def forward(
        self,
        text: Tensor,
        text_mask: Tensor,
        context: Tensor,
        context_mask: Tensor,
        positions: Tensor | None = None,
    ) -> Tensor:
        """Logits [B, T, vocab], or [N, vocab] at the N true cells of `positions` [B, T]
        only: a loss needs just the masked tokens, and the vocabulary projection of every
        position (30k words for BERT's) was most of a training step's cost."""
        memory = self.context(context)  # [B, S, Dt]
        hidden = self.decoder(
            text,
            memory,
            tgt_key_padding_mask=~text_mask.bool(),
            memory_key_padding_mask=~context_mask.bool(),
        )  # [B, T, Dt]
        if positions is not None:
            hidden = hidden[positions]  # [N, Dt]
        return self.vocab(self.norm(hidden))
