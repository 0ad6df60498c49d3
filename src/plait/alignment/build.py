"""Turn a resolved alignment config plus fitted processors into an AlignedModel.

Two kinds of towers:
* any Plait encoders (scratch or pretrained, e.g. a MiniLM text tower beside a scratch
  audio CNN) get fresh projection heads to `alignment.dim`;
* when both aligned modalities name the same pretrained dual-encoder checkpoint (CLIP,
  SigLIP, CLAP), its own projections and logit scale (and bias) are used, so the model
  starts from exactly the checkpoint's embedding space and zero-shot works before any
  training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from plait.alignment.model import AlignedModel
from plait.config import AlignmentConfig, PlaitConfig
from plait.encoders import build_encoder
from plait.errors import ConfigError
from plait.fusion import build_fusion
from plait.heads.masked_lm import MaskedLMHead
from plait.heads.masked_region import MaskedRegionHead
from plait.heads.matching import MatchingHead
from plait.heads.projection import Projection
from plait.objectives.alignment import TextTokens
from plait.objectives.masked_region import region_count


def build_aligned_model(
    config: PlaitConfig, processors: Mapping[str, Any], *, load_weights: bool = True
) -> AlignedModel:
    """Encoders, projections and the heads the configured objectives need."""
    alignment = _alignment(config)
    pair = config.aligned_pair
    text = text_tokens(config, processors)
    encoders = {}
    for name in pair:
        vocab = getattr(processors[name], "vocab_size", None)
        if text is not None and name == text.name and vocab is not None:
            vocab = max(vocab, text.mask_id + 1)  # a scratch vocabulary gains a mask row
        encoders[name] = build_encoder(
            config.modalities[name], vocab_size=vocab, load_weights=load_weights
        )
    projections, scale, bias = _projections(config, encoders, load_weights)
    names = alignment.objective_names
    matcher = None
    if "itm" in names:
        dims = {name: encoders[name].output_dim for name in pair}
        fusion_config = config.fusion.model_copy(update={"method": "cross_attention"})
        matcher = MatchingHead(build_fusion(dims, fusion_config, 2))
    decoder = None
    if text is not None:
        other = next(name for name in pair if name != text.name)
        decoder = MaskedLMHead(
            encoders[text.name].output_dim,
            encoders[other].output_dim,
            text.vocab_size,  # targets are real tokens, never the mask
            layers=alignment.decoder_layers,
            heads=config.fusion.heads,
            dropout=config.fusion.dropout,
        )
    return AlignedModel(
        encoders,
        projections,
        logit_scale=scale,
        logit_bias=bias,
        learn_temperature=alignment.learn_temperature,
        matcher=matcher,
        decoder=decoder,
        regions=region_heads(config, processors, encoders) if "mrm" in names else None,
    )


#: the inputs masked region modelling can cut regions from, by the key a processor makes
REGION_INPUTS = ("pixel_values", "features", "input_features", "input_values")


def region_heads(
    config: PlaitConfig, processors: Mapping[str, Any], encoders: Mapping[str, nn.Module]
) -> dict[str, MaskedRegionHead]:
    """One MRM head per image / audio modality of the pair, the other one as its context.

    The region count and channels come from what the modality's processor makes (its
    missing-sample placeholder has the real shape): [C, H, W] (image pixels, a scratch
    spectrogram) or [H, W] (a hub spectrogram such as Whisper's or AST's)."""
    alignment = _alignment(config)
    heads = {}
    for name in config.aligned_pair:
        if config.modalities[name].kind == "text":
            continue
        other = next(n for n in config.aligned_pair if n != name)
        sample = processors[name].placeholder()
        key = next((k for k in REGION_INPUTS if k in sample), None)
        if key is None or sample[key].dim() not in (2, 3):
            shapes = {k: tuple(v.shape) for k, v in sample.items()}
            raise ConfigError(
                f"the `mrm` objective masks regions of an image or spectrogram, but the "
                f"`{name}` tower reads {shapes} (a waveform?); use a scratch audio encoder "
                "or one that reads spectrograms, or drop `mrm`"
            )
        shape = sample[key].shape
        maps = sample[key] if len(shape) == 3 else sample[key].unsqueeze(0)  # [C, H, W]
        regions = region_count(maps.unsqueeze(0), alignment.region_grid)
        heads[name] = MaskedRegionHead(
            _width(encoders[name]),
            _width(encoders[other]),
            regions,
            int(maps.shape[0]),
            key=key,
            layers=alignment.decoder_layers,
            heads=config.fusion.heads,
            dropout=config.fusion.dropout,
        )
    return heads


def _alignment(config: PlaitConfig) -> AlignmentConfig:
    if config.alignment is None:
        raise ConfigError("this config has no `alignment:` block")
    return config.alignment


def _projections(
    config: PlaitConfig, encoders: Mapping[str, nn.Module], load_weights: bool
) -> tuple[dict[str, nn.Module], float, float | None]:
    """(projection per modality, initial log logit scale, initial logit bias)."""
    alignment = _alignment(config)
    names = alignment.objective_names
    checkpoint = shared_dual_checkpoint(config)
    if checkpoint is not None:
        from plait.encoders.dual import load_pretrained_heads

        kinds = [config.modalities[name].kind for name in config.aligned_pair]
        heads = load_pretrained_heads(checkpoint, kinds, load_weights=load_weights)
        projections = {
            name: heads.projections[kind]
            for name, kind in zip(config.aligned_pair, kinds, strict=True)
        }
        bias = heads.logit_bias
        if bias is None and "siglip" in names:
            bias = alignment.siglip_bias
        return projections, heads.logit_scale, bias
    fresh: dict[str, nn.Module] = {
        name: Projection(_width(encoders[name]), alignment.dim, alignment.projection)
        for name in config.aligned_pair
    }
    if "siglip" in names and "clip" not in names:
        return fresh, math.log(alignment.siglip_scale), alignment.siglip_bias
    bias = alignment.siglip_bias if "siglip" in names else None
    return fresh, math.log(1 / alignment.temperature), bias


def shared_dual_checkpoint(config: PlaitConfig) -> str | None:
    """The checkpoint both aligned towers come from, when it is a CLIP/SigLIP/CLAP model."""
    encoders = [config.modalities[name].encoder for name in config.aligned_pair]
    models = {e.model for e in encoders if e.type == "huggingface"}
    if len(models) != 1 or any(e.type != "huggingface" for e in encoders):
        return None
    from plait.encoders.dual import dual_checkpoint_type

    (model,) = models
    return model if model and dual_checkpoint_type(model) else None


def text_tokens(config: PlaitConfig, processors: Mapping[str, Any]) -> TextTokens | None:
    """Mask token and special ids of the text modality, when the `mlm` objective is on."""
    alignment = _alignment(config)
    if "mlm" not in alignment.objective_names:
        return None
    name = next(n for n in config.aligned_pair if config.modalities[n].kind == "text")
    processor = processors[name]
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None:  # Plait's own vocabulary: the mask token is one extra id
        size = int(processor.vocab_size)
        return TextTokens(name, mask_id=size, vocab_size=size, special_ids=[0])
    if tokenizer.mask_token_id is None:
        model = config.modalities[name].encoder.model
        raise ConfigError(
            f"the `mlm` objective needs a mask token, and the tokenizer of {model} has none "
            "(BERT / MiniLM / RoBERTa tokenizers have one; CLIP's does not)"
        )
    return TextTokens(
        name,
        mask_id=int(tokenizer.mask_token_id),
        vocab_size=len(tokenizer),
        special_ids=[int(i) for i in tokenizer.all_special_ids],
    )


def _width(encoder: nn.Module) -> int:
    """An encoder's pooled width (`output_dim` of the Plait encoder contract)."""
    return int(getattr(encoder, "output_dim"))  # noqa: B009  (typed as Tensor | Module)
