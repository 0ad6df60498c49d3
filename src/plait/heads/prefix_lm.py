"""A Hugging Face causal LM (GPT-2 or any `AutoModelForCausalLM`) that captions from a
learned prefix (ClipCap, Mokady et al. 2021): an MLP maps the source's pooled vector to
`prefix_length` vectors in the LM's embedding space; the caption tokens follow them. The
LM is frozen (only the mapper learns) or fine-tuned with it, and decodes with its own
`generate()`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class PrefixMapper(nn.Module):
    """pooled [B, Dm] -> prefix [B, P, E]: Linear, Tanh, Linear (ClipCap's MLP)."""

    def __init__(self, pooled_dim: int, embed_dim: int, prefix_length: int) -> None:
        super().__init__()
        self.prefix_length, self.embed_dim = prefix_length, embed_dim
        hidden = embed_dim * prefix_length // 2
        self.net = nn.Sequential(
            nn.Linear(pooled_dim, hidden), nn.Tanh(), nn.Linear(hidden, embed_dim * prefix_length)
        )

    def forward(self, pooled: Tensor) -> Tensor:
        # unflatten, not view(len(pooled), ...): an ONNX trace keeps the batch size dynamic
        return self.net(pooled).unflatten(-1, (self.prefix_length, self.embed_dim))


class PrefixLMDecoder(nn.Module):
    """pooled [B, Dm] + tokens [B, L] -> logits [B, L, V] for the token positions: the
    logit at position i predicts token i + 1 (position 0 is predicted by the prefix)."""

    def __init__(
        self, lm: Any, pooled_dim: int, prefix_length: int, freeze_lm: bool = True
    ) -> None:
        super().__init__()
        self.lm: Any = lm
        self.freeze_lm = freeze_lm
        embed_dim = int(lm.get_input_embeddings().embedding_dim)
        self.mapper = PrefixMapper(pooled_dim, embed_dim, prefix_length)
        if freeze_lm:
            for param in self.lm.parameters():
                param.requires_grad_(False)

    def train(self, mode: bool = True) -> PrefixLMDecoder:
        super().train(mode)
        if self.freeze_lm:
            self.lm.eval()  # a frozen LM keeps its dropout off
        return self

    def forward(self, pooled: Tensor, tokens: Tensor, token_mask: Tensor) -> Tensor:
        """pooled [B, Dm], tokens [B, L] long, token_mask [B, L] (1: real) -> [B, L, V]:
        the logits after the last prefix vector and after every token but the last."""
        prefix = self.mapper(pooled)  # [B, P, E]
        embeds = torch.cat([prefix, self.lm.get_input_embeddings()(tokens)], 1)  # [B, P+L, E]
        ones = torch.ones(prefix.shape[:2], dtype=token_mask.dtype, device=tokens.device)
        mask = torch.cat([ones, token_mask], 1)  # [B, P+L]
        logits = self.lm(inputs_embeds=embeds, attention_mask=mask).logits  # [B, P+L, V]
        start = prefix.shape[1] - 1
        return logits[:, start : start + tokens.shape[1]]  # [B, L, V]

    @torch.no_grad()
    def generate(self, pooled: Tensor, **options: Any) -> Tensor:
        """Generated ids [B, <=max_new_tokens] through the LM's own `generate()` from the
        prefix alone (`inputs_embeds`), with Hugging Face's decoding options."""
        prefix = self.mapper(pooled)  # [B, P, E]
        mask = torch.ones(prefix.shape[:2], dtype=torch.long, device=prefix.device)
        return self.lm.generate(inputs_embeds=prefix, attention_mask=mask, **options)
