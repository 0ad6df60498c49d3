"""Heads, picked by task. One explicit table; nothing registers itself on import."""

from __future__ import annotations

from torch import nn

from plait.config import HeadConfig
from plait.heads.mlp import MLPHead

HEADS: dict[str, type[nn.Module]] = {
    "classification": MLPHead,
    "multilabel": MLPHead,
    "regression": MLPHead,
}


def build_head(input_dim: int, num_outputs: int, config: HeadConfig) -> nn.Module:
    if config.task not in HEADS:
        raise ValueError(f"unknown task `{config.task}`; valid: {', '.join(HEADS)}")
    return HEADS[config.task](input_dim, num_outputs, config)


__all__ = ["HEADS", "MLPHead", "build_head"]
