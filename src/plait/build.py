"""Turn a resolved config plus fitted preprocessing into a MultimodalModel.

The only place where config values become constructor arguments; the modules themselves
never see the config object as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.config import PlaitConfig
from plait.encoders import build_encoder
from plait.fusion import build_fusion
from plait.heads import build_head
from plait.model import MultimodalModel


def build_model(
    config: PlaitConfig,
    processors: Mapping[str, Any],
    num_outputs: int,
    *,
    load_weights: bool = True,
) -> MultimodalModel:
    """Build encoders, fusion and head.

    Args:
        processors: fitted processors per modality (text ones know their vocabulary size).
        num_outputs: classes, labels or regression targets.
        load_weights: fetch pretrained hub weights; False when a saved Plait model is about
            to load its own weights (then only the architecture is built, offline).
    """
    encoders = {
        name: build_encoder(
            modality,
            vocab_size=getattr(processors[name], "vocab_size", None),
            load_weights=load_weights,
        )
        for name, modality in config.modalities.items()
    }
    input_dims = {name: encoder.output_dim for name, encoder in encoders.items()}
    fusion = build_fusion(input_dims, config.fusion, num_outputs)
    head = build_head(fusion.output_dim, num_outputs, config.head)
    return MultimodalModel(encoders, fusion, head, config.fusion.modality_dropout)
