"""The pretrained heads of a dual-encoder checkpoint (CLIP, SigLIP, SigLIP2, CLAP).

A dual encoder embeds two modalities in one space: tower -> pooled vector -> projection ->
L2-normalise, and scores pairs by `exp(logit_scale) * cosine (+ logit_bias)`. Plait builds
the towers with `build_encoder` (its `pooling: auto` gives exactly the pooled vector the
checkpoint projects, see `plait.encoders.hub`); this module gives the rest, so that an
aligned model pointed at one checkpoint for both modalities reproduces transformers'
`get_text_features` / `get_image_features` / `get_audio_features` (`.pooler_output`):

    heads = load_pretrained_heads("openai/clip-vit-base-patch32", ["text", "image"])
    text = build_encoder(TextModality(column="caption", encoder=hub_config))
    joint = heads.projections["text"](text(**batch).pooled)  # [B, heads.dim]

Per checkpoint type:
- CLIP: `text_projection` / `visual_projection`, bias-free linears; `logit_scale`.
- SigLIP / SigLIP2: no projection (the towers' heads already map into the joint space), so
  `nn.Identity()`; `logit_scale` and `logit_bias`.
- CLAP: `text_projection` / `audio_projection` (linear, ReLU, linear); of its two scales,
  `logit_scale_a`, the one LAION's CLAP scores both directions with (`logit_scale_t` only
  serves its unused MLP loss). CLAP's `get_*_features` also L2-normalise; the projection
  here does not (the aligned model normalises).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel
from transformers.models.clap.modeling_clap import ClapProjectionLayer

from plait.encoders.hub import check_hub_model
from plait.errors import ConfigError

DUAL_MODEL_TYPES = frozenset({"clip", "siglip", "siglip2", "clap"})

# model_type -> modality kind -> the full model's projection attribute (None: no projection)
PROJECTIONS: dict[str, dict[str, str | None]] = {
    "clip": {"text": "text_projection", "image": "visual_projection"},
    "siglip": {"text": None, "image": None},
    "siglip2": {"text": None, "image": None},
    "clap": {"text": "text_projection", "audio": "audio_projection"},
}
SUB_CONFIGS = {"text": "text_config", "image": "vision_config", "audio": "audio_config"}
LOGIT_SCALE = {"clip": "logit_scale", "siglip": "logit_scale", "siglip2": "logit_scale"}
LOGIT_SCALE["clap"] = "logit_scale_a"


@dataclass
class PretrainedHeads:
    """What a dual checkpoint adds on top of its towers.

    Attributes:
        projections: modality kind ("text", "image", "audio") -> module mapping the tower's
            pooled [B, D_tower] to [B, dim]; `nn.Identity()` where the checkpoint has none.
        logit_scale: log of the similarity scale, as the checkpoint stores it.
        logit_bias: SigLIP's additive logit bias; None for the softmax-loss models.
        dim: joint embedding width.
    """

    projections: dict[str, nn.Module]
    logit_scale: float
    logit_bias: float | None
    dim: int


def dual_checkpoint_type(name: str) -> str | None:
    """The model_type of hub name / folder `name` when it is a dual-encoder checkpoint, else
    None. Reads only the config (no weights)."""
    check_hub_model(name, "aligned pair")
    model_type = str(AutoConfig.from_pretrained(name).model_type)
    return model_type if model_type in DUAL_MODEL_TYPES else None


def load_pretrained_heads(
    name: str, kinds: Sequence[str], *, load_weights: bool = True
) -> PretrainedHeads:
    """The projections and logit scale / bias of dual checkpoint `name` for `kinds`.

    With `load_weights` the whole checkpoint is loaded once, its projections are copied into
    standalone modules and the rest is dropped. Without, the same modules are built from the
    config alone (random values; a saved Plait model then loads its own weights into them,
    under the stable names `weight`, or `linear1.*` / `linear2.*` for CLAP).

    Raises:
        ConfigError: `name` cannot be loaded (`check_hub_model`), is not a dual checkpoint,
            or has no tower for one of `kinds`.
    """
    check_hub_model(name, "aligned pair")
    config = AutoConfig.from_pretrained(name)
    model_type = config.model_type
    if model_type not in DUAL_MODEL_TYPES:
        raise ConfigError(
            f"'{name}' is a {model_type} checkpoint, not a dual encoder; pretrained "
            f"projections come from {', '.join(sorted(DUAL_MODEL_TYPES))} checkpoints"
        )
    towers = PROJECTIONS[model_type]
    for kind in kinds:
        if kind not in towers:
            raise ConfigError(
                f"'{name}' is a {model_type} checkpoint with {' and '.join(towers)} towers; "
                f"it has no {kind} tower"
            )
    projections = {kind: build_projection(config, kind) for kind in kinds}
    if not load_weights:
        scale, bias = initial_logits(config)
        return PretrainedHeads(projections, scale, bias, joint_width(config))
    full = AutoModel.from_pretrained(name, dtype=torch.float32)
    for kind, projection in projections.items():
        attribute = towers[kind]
        if attribute is not None:
            projection.load_state_dict(getattr(full, attribute).state_dict())
    scale = float(getattr(full, LOGIT_SCALE[model_type]).detach())
    bias = float(full.logit_bias.detach()) if hasattr(full, "logit_bias") else None
    del full  # only the copied projections stay in memory
    return PretrainedHeads(projections, scale, bias, joint_width(config))


def build_projection(config: Any, kind: str) -> nn.Module:
    """The randomly initialised projection module of `kind`, shaped as in the checkpoint."""
    sub = getattr(config, SUB_CONFIGS[kind])
    if config.model_type == "clip":
        return nn.Linear(sub.hidden_size, config.projection_dim, bias=False)
    if config.model_type == "clap":
        return ClapProjectionLayer(sub)  # linear1, activation, linear2
    if kind == "text" and sub.projection_size != sub.hidden_size:  # SigLIP: the head's width
        raise ConfigError(
            f"SigLIP text tower with projection_size {sub.projection_size} != hidden_size "
            f"{sub.hidden_size} is not supported (Plait's pooled and sequence widths differ)"
        )
    return nn.Identity()


def joint_width(config: Any) -> int:
    """Width of the joint space: the projection width (CLIP, CLAP) or SigLIP's head width."""
    if config.model_type in ("clip", "clap"):
        return int(config.projection_dim)
    return int(config.vision_config.hidden_size)


def initial_logits(config: Any) -> tuple[float, float | None]:
    """(log scale, bias) as the model class initialises them from its config."""
    if config.model_type == "clip":
        return float(config.logit_scale_init_value), None  # stored as the log already
    if config.model_type == "clap":
        return math.log(config.logit_scale_init_value), None  # stored as the scale itself
    return 0.0, 0.0  # SiglipModel / Siglip2Model initialise both to zero
