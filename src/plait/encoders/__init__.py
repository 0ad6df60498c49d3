"""Encoders: one modality's tensors -> `EncoderOutput(sequence, pooled, mask)`.

`ENCODERS` is the explicit table of encoder types; `build_encoder` turns a modality's
config into a ready module. `huggingface` maps to the text, image or audio wrapper by the
modality's kind. The names and the kinds each type encodes are `plait.config.ENCODER_KINDS`
(the config layer validates `encoder.type` against them without importing model code);
ENCODERS has exactly those names, which tests/encoders/test_contract.py checks while it
runs every row.
"""

from __future__ import annotations

import logging

from plait.config import ENCODER_KINDS, AudioModality, ImageModality, TextModality
from plait.encoders.audio import AudioCNNEncoder, AudioTransformerEncoder, LeNetAudioEncoder
from plait.encoders.base import Encoder, EncoderOutput, masked_max, masked_mean
from plait.encoders.hub import HFAudioEncoder, HFEncoder, HFImageEncoder, HFTextEncoder
from plait.encoders.image import ImageCNNEncoder, LeNetImageEncoder
from plait.encoders.text import TextCNNEncoder, TextGRUEncoder, TextTransformerEncoder

log = logging.getLogger("plait")

HF_ENCODERS: dict[str, type[HFEncoder]] = {
    "text": HFTextEncoder,
    "image": HFImageEncoder,
    "audio": HFAudioEncoder,
}

ENCODERS: dict[str, type[Encoder]] = {
    "text_cnn": TextCNNEncoder,
    "text_gru": TextGRUEncoder,
    "text_transformer": TextTransformerEncoder,
    "image_cnn": ImageCNNEncoder,
    "image_lenet": LeNetImageEncoder,
    "audio_cnn": AudioCNNEncoder,
    "audio_lenet": LeNetAudioEncoder,
    "audio_transformer": AudioTransformerEncoder,
    "huggingface": HFEncoder,  # the subclass is picked by kind from HF_ENCODERS
}


def build_encoder(
    modality: TextModality | ImageModality | AudioModality,
    *,
    vocab_size: int | None = None,
    load_weights: bool = True,
) -> Encoder:
    """Build the encoder a modality config asks for.

    Args:
        modality: a `TextModality`, `ImageModality` or `AudioModality`.
        vocab_size: size of Plait's own vocabulary; required for scratch text encoders.
        load_weights: for `huggingface`, download/read pretrained weights (False builds
            the architecture from its config, for a saved model that loads its own).
    """
    config = modality.encoder
    if config.type not in ENCODERS:
        raise ValueError(f"unknown encoder type `{config.type}`; valid: {', '.join(ENCODERS)}")
    if config.type == "huggingface":
        return HF_ENCODERS[modality.kind](config, load_weights=load_weights)
    if modality.kind not in ENCODER_KINDS[config.type]:
        raise ValueError(f"encoder `{config.type}` cannot encode {modality.kind} data")
    encoder: Encoder
    if isinstance(modality, TextModality):
        if vocab_size is None:
            raise ValueError(f"encoder `{config.type}` needs vocab_size (the text vocabulary)")
        encoder = ENCODERS[config.type](
            config, vocab_size=vocab_size, max_length=modality.max_length
        )
    elif isinstance(modality, ImageModality):
        encoder = ENCODERS[config.type](
            config, channels=modality.channels, image_size=modality.size
        )
    else:
        encoder = ENCODERS[config.type](config, n_mels=modality.n_mels)
    summary = getattr(encoder, "summary", None)
    if load_weights and summary:  # at training time, not on every load
        log.info("%s (%s, dim %d): %s", modality.column, config.type, config.dim, summary)
    return encoder


__all__ = [
    "ENCODERS",
    "HF_ENCODERS",
    "AudioCNNEncoder",
    "AudioTransformerEncoder",
    "Encoder",
    "EncoderOutput",
    "HFAudioEncoder",
    "HFEncoder",
    "HFImageEncoder",
    "HFTextEncoder",
    "ImageCNNEncoder",
    "LeNetAudioEncoder",
    "LeNetImageEncoder",
    "TextCNNEncoder",
    "TextGRUEncoder",
    "TextTransformerEncoder",
    "build_encoder",
    "masked_max",
    "masked_mean",
]
