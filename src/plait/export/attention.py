"""Multi-head attention the TorchScript exporter can trace at any batch size and length.

`nn.MultiheadAttention` reshapes its projections to `(T, B * heads, head_dim)`: the
product is computed in Python from traced sizes, so the legacy exporter freezes it at the
export sample's batch and length (the graph then fails, or silently mixes rows, at any
other size). While the legacy exporter runs, `traceable_attention()` swaps in a forward
that splits heads with `unflatten` on the feature axis alone and calls
`scaled_dot_product_attention`, computing the same function from the same weights; the
parity check then confirms the graph matches the untouched PyTorch module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_ORIGINAL = nn.MultiheadAttention.forward


def _forward(
    self: nn.MultiheadAttention,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    key_padding_mask: Tensor | None = None,
    need_weights: bool = True,
    attn_mask: Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """The batch-first, packed-projection case Plait builds (a 2-D attention mask
    allowed: the caption decoder's causal one); anything else: the original."""
    plain = (
        self.batch_first
        and self._qkv_same_embed_dim
        and self.in_proj_bias is not None
        and self.bias_k is None
        and (attn_mask is None or attn_mask.dim() == 2)
        and (attn_mask is not None or not is_causal)
    )
    if not plain:
        return _ORIGINAL(
            self, query, key, value, key_padding_mask, need_weights, attn_mask,
            average_attn_weights, is_causal,
        )  # fmt: skip
    heads, width = self.num_heads, self.head_dim
    w_q, w_k, w_v = self.in_proj_weight.chunk(3)
    b_q, b_k, b_v = self.in_proj_bias.chunk(3)
    q = F.linear(query, w_q, b_q).unflatten(-1, (heads, width)).transpose(1, 2)  # [B, H, T, d]
    k = F.linear(key, w_k, b_k).unflatten(-1, (heads, width)).transpose(1, 2)  # [B, H, S, d]
    v = F.linear(value, w_v, b_v).unflatten(-1, (heads, width)).transpose(1, 2)  # [B, H, S, d]
    mask = None
    if key_padding_mask is not None:
        if key_padding_mask.dtype == torch.bool:  # True = not attended to
            additive = torch.zeros_like(key_padding_mask, dtype=q.dtype)
            additive = additive.masked_fill(key_padding_mask, float("-inf"))  # [B, S]
        else:
            additive = key_padding_mask.to(q.dtype)  # already additive (0 / -inf)
        mask = additive[:, None, None, :]  # [B, 1, 1, S]
    if attn_mask is not None:  # [T, S]: a decoder's causal mask (is_causal is only a hint)
        if attn_mask.dtype == torch.bool:  # True = not attended to
            extra = torch.zeros_like(attn_mask, dtype=q.dtype).masked_fill(attn_mask, float("-inf"))
        else:
            extra = attn_mask.to(q.dtype)
        mask = extra if mask is None else mask + extra  # [T, S] or [B, 1, T, S]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, H, T, d]
    out = out.transpose(1, 2).flatten(2)  # [B, T, E]
    return self.out_proj(out), None


@contextmanager
def traceable_attention() -> Iterator[None]:
    """Within the block every `nn.MultiheadAttention` runs the traceable forward."""
    setattr(nn.MultiheadAttention, "forward", _forward)  # noqa: B010
    try:
        yield
    finally:
        setattr(nn.MultiheadAttention, "forward", _ORIGINAL)  # noqa: B010
