"""Fusions: {modality: EncoderOutput} + presence -> one fused vector (or logits for `late`).

`FUSIONS` maps each `fusion.method` name to its class; `build_fusion` builds one. The
names and each fusion's options model are `plait.config.FUSION_OPTIONS` (the config layer
validates YAML against them without importing model code); every row here has a row
there with the same name, and the class's `Options` is that row's model. The contract
test tests/fusion/test_fusions.py checks both and runs every row.
"""

from __future__ import annotations

from plait.config import FusionConfig
from plait.fusion.attention import AttentionFusion
from plait.fusion.base import Fusion
from plait.fusion.concat import ConcatFusion
from plait.fusion.cross_attention import CrossAttentionFusion
from plait.fusion.gated import GatedFusion
from plait.fusion.late import LateFusion
from plait.fusion.low_rank import LowRankFusion
from plait.fusion.sum import SumFusion
from plait.fusion.tensor import TensorFusion

FUSIONS: dict[str, type[Fusion]] = {
    "concat": ConcatFusion,
    "sum": SumFusion,
    "gated": GatedFusion,
    "attention": AttentionFusion,
    "cross_attention": CrossAttentionFusion,
    "tensor": TensorFusion,
    "low_rank": LowRankFusion,
    "late": LateFusion,
}


def build_fusion(input_dims: dict[str, int], config: FusionConfig, num_outputs: int) -> Fusion:
    """Build the fusion named by `config.method` for modalities of widths `input_dims`,
    passing it only its own options (`config.options()`)."""
    if config.method not in FUSIONS:
        valid = ", ".join(sorted(FUSIONS))
        raise ValueError(f"unknown fusion method {config.method!r}; valid methods: {valid}")
    if not input_dims:
        raise ValueError("a fusion needs at least one modality")
    return FUSIONS[config.method](input_dims, config.options(), num_outputs)


__all__ = [
    "FUSIONS",
    "AttentionFusion",
    "ConcatFusion",
    "CrossAttentionFusion",
    "Fusion",
    "GatedFusion",
    "LateFusion",
    "LowRankFusion",
    "SumFusion",
    "TensorFusion",
    "build_fusion",
]
