"""The one config schema of Plait.

Every choice a user can make lives here, validated by pydantic, with each default in
exactly one place. A config is loaded from YAML, resolved (relative paths made absolute),
passed explicitly to the parts that need it and saved beside every run and model, so a run
can be reproduced and a saved model rebuilt without the original file.

Example (the smallest useful config)::

    data:
      train: data/train.csv
      label: genre
    modalities:
      review: {kind: text, column: review_text}
      poster: {kind: image, column: poster_path}
    fusion: {method: gated}
"""

from __future__ import annotations

import difflib
import re
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from plait.errors import ConfigError

# ------------------------------------------------------------------------ the name tables
#
# Why the names live here and the code in `plait.encoders` / `plait.fusion`: this module is
# the bottom layer (it imports no model code, see tests/test_import_graph.py), yet a typo in
# `fusion.method` must fail when the YAML is read, naming the key and the closest name. So
# the config layer owns each table's *names and options* (plain data), and the model layer
# owns one row of *code* per name: `ENCODERS` and `FUSIONS` are keyed by exactly these
# names, every fusion class declares the options model below as its `Options`, and the
# contract tests (tests/encoders/test_contract.py, tests/fusion/test_fusions.py) fail when
# a name has no code, code has no name, or a fusion's `Options` is not the one named here.

ENCODER_KINDS: dict[str, tuple[str, ...]] = {
    "text_cnn": ("text",),
    "text_gru": ("text",),
    "text_transformer": ("text",),
    "image_cnn": ("image",),
    "image_lenet": ("image",),
    "audio_cnn": ("audio",),
    "audio_lenet": ("audio",),
    "audio_transformer": ("audio",),
    "huggingface": ("text", "image", "audio"),
}
"""Encoder type -> the modality kinds it can encode (`encoder.type` is checked against it)."""


def _choice(value: str, table: dict[str, Any]) -> str:
    """`value` if it names a row of `table`, else the error `explain_validation_error` turns
    into "`key`: `value` is not one of ... Did you mean `closest`?"."""
    if value not in table:
        expected = ", ".join(repr(name) for name in table)
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": expected}
        )
    return value


class _Strict(BaseModel):
    """Base for every config block: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EncoderConfig(_Strict):
    """Which network turns one modality into features.

    Args:
        type: a from-scratch encoder (`text_cnn`, `text_gru`, `text_transformer`,
            `image_cnn`, `image_lenet`, `audio_cnn`, `audio_lenet`, `audio_transformer`) or
            `huggingface` for a pretrained model named by `model`.
        model: Hugging Face hub name (`sentence-transformers/all-MiniLM-L6-v2`) or local
            folder; only for `type: huggingface`.
        dim: output width of a from-scratch encoder (pretrained ones keep their own);
            `auto` (or left out): picked from the input size for `image_cnn` and
            `audio_cnn` (`auto_cnn_size`), 128 for the others. A loaded config always
            holds the number, so a saved one never says `auto`.
        layers: depth of a from-scratch encoder (conv blocks, GRU or Transformer layers);
            `auto` (or left out) as for `dim` (2 for the others).
        heads: attention heads of a from-scratch Transformer.
        dropout: dropout inside the encoder.
        freeze: keep pretrained weights fixed (`unfreeze_last` layers excepted).
        unfreeze_last: with `freeze: true`, train the last N transformer layers anyway.
        pooling: how the sequence becomes one vector: `mean` (masked), `cls`, `max`,
            or `auto`: `max` for `image_cnn` (written into the config as read, so a
            saved one says `max`); for a hub model, its sentence-transformers pooling
            (and normalisation) when its folder has that config, else its own pooler if
            it has one, else mean (`plait.encoders.hub.resolve_pooling`); mean for the
            other scratch encoders.
    """

    type: str
    model: str | None = None
    dim: int = Field(128, gt=0)
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    freeze: bool = False
    unfreeze_last: int = Field(0, ge=0)
    pooling: Literal["auto", "mean", "cls", "max"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _auto_is_unset(cls, data: Any) -> Any:
        """`dim: auto` / `layers: auto` read as left out, so the modality can size them."""
        if isinstance(data, dict) and any(data.get(key) == "auto" for key in AUTO_SIZED_KEYS):
            return {k: v for k, v in data.items() if not (k in AUTO_SIZED_KEYS and v == "auto")}
        return data

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        return _choice(value, ENCODER_KINDS)

    @model_validator(mode="after")
    def _model_only_for_hub(self) -> EncoderConfig:
        if self.type == "huggingface" and not self.model:
            raise ValueError("encoder type 'huggingface' needs `model:` (hub name or local path)")
        if self.type != "huggingface" and self.model:
            raise ValueError(
                f"`model: {self.model}` is only used with `type: huggingface`, not `{self.type}`"
            )
        return self


# ------------------------------------------------------------------------- augmentation
#
# Augmentation is a list of named transforms, each a small model with a `name` tag, applied
# in training only, in list order, with the dataset's seeded generator (so a run reproduces).
# The code of each name lives in `plait.data.augment` (`IMAGE_TRANSFORMS`,
# `AUDIO_WAVE_TRANSFORMS`, `AUDIO_FEATURE_TRANSFORMS`); tests/data/test_augment.py fails
# when a name here has no code there or code has no name.
#
# `p` is the chance a transform is applied: 0 disables it (no random draw), 1 always
# applies it (no draw), anything between draws one number first.


class _Transform(_Strict):
    p: float = Field(1.0, ge=0.0, le=1.0, description="chance the transform is applied")


def _range(low: float, high: float) -> Any:
    return Field((low, high), description="[low, high]")


class RandomResizedCrop(_Transform):
    """A random crop covering `scale` of the area with aspect ratio in `ratio`, resized to
    `size` (float array rows: cut out, then resized)."""

    name: Literal["random_resized_crop"] = "random_resized_crop"
    scale: tuple[float, float] = _range(0.8, 1.0)
    ratio: tuple[float, float] = _range(3 / 4, 4 / 3)

    @model_validator(mode="after")
    def _ordered(self) -> RandomResizedCrop:
        low, high = self.scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"`scale` must satisfy 0 < low <= high <= 1, got {list(self.scale)}")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"`ratio` must satisfy 0 < low <= high, got {list(self.ratio)}")
        return self


class HorizontalFlip(_Transform):
    """Mirror left-right with chance `p`. Not in the default: it falsifies text, arrows and
    anything "facing left/right"; add it for pictures whose meaning survives a mirror."""

    name: Literal["hflip"] = "hflip"
    p: float = Field(0.5, ge=0.0, le=1.0)


class VerticalFlip(_Transform):
    """Mirror top-bottom with chance `p` (aerial, microscope or texture images)."""

    name: Literal["vflip"] = "vflip"
    p: float = Field(0.5, ge=0.0, le=1.0)


class ColorJitter(_Transform):
    """Pixel values x U(1 - brightness, 1 + brightness), then contrast about the image's mean
    by U(1 - contrast, 1 + contrast); 0 turns either off. Pixel images only (decoded files,
    uint8 arrays): float array rows carry no pixel scale and are left as they are."""

    name: Literal["color_jitter"] = "color_jitter"
    brightness: float = Field(0.0, ge=0.0, lt=1.0)
    contrast: float = Field(0.0, ge=0.0, lt=1.0)


ImageTransform = Annotated[
    RandomResizedCrop | HorizontalFlip | VerticalFlip | ColorJitter,
    Field(discriminator="name"),
]

LEGACY_IMAGE_AUGMENT: tuple[ImageTransform, ...] = (
    RandomResizedCrop(),
    HorizontalFlip(p=0.5),
    ColorJitter(brightness=0.1),
)
"""What `augment: true` meant when augmentation was one switch, and still means."""

DEFAULT_IMAGE_AUGMENT: tuple[ImageTransform, ...] = (
    RandomResizedCrop(),
    ColorJitter(brightness=0.1),
)
"""The default: the old set without its flip (see `HorizontalFlip`)."""


def _default_image_augment() -> list[ImageTransform]:
    return [transform.model_copy() for transform in DEFAULT_IMAGE_AUGMENT]


class TimeShift(_Transform):
    """Shift the (cropped) waveform by up to `max_seconds` either way, filling with silence."""

    name: Literal["time_shift"] = "time_shift"
    max_seconds: float = Field(0.1, ge=0.0)


class Gain(_Transform):
    """Scale the waveform by U(-db, +db) decibels. Scratch log-mel features are normalised
    per clip, which removes most of a gain change (it moves the noise floor); hub feature
    extractors that do not normalise see all of it."""

    name: Literal["gain"] = "gain"
    db: float = Field(6.0, ge=0.0)


class SpecAugment(_Transform):
    """Zero `time_masks` bands of frames and `freq_masks` bands of mel bins, each up to
    `time_width` / `freq_width` of its axis (scratch encoders: the log-mel features)."""

    name: Literal["spec_augment"] = "spec_augment"
    time_masks: int = Field(2, ge=0)
    freq_masks: int = Field(2, ge=0)
    time_width: float = Field(0.1, gt=0.0, le=1.0)
    freq_width: float = Field(0.1, gt=0.0, le=1.0)


AudioTransform = Annotated[TimeShift | Gain | SpecAugment, Field(discriminator="name")]

TRANSFORM_MODELS: dict[str, type[_Transform]] = {
    model.model_fields["name"].default: model
    for model in (RandomResizedCrop, HorizontalFlip, VerticalFlip, ColorJitter)
    + (TimeShift, Gain, SpecAugment)
}
"""Transform name -> its settings model (image and audio names never collide)."""


def _augment_list(value: Any, true: tuple[_Transform, ...]) -> Any:
    """`true` -> the transforms it stands for, `false` -> none, a list as it is."""
    if value is True:
        return [t.model_copy() for t in true]
    if value is False or value is None:
        return []
    return value


# ------------------------------------------------------------------ auto encoder sizes

#: encoder keys that `auto` (or leaving them out) sizes from the input
AUTO_SIZED_KEYS = ("dim", "layers")
#: scratch encoders whose `dim` and `layers` follow the input size by default
AUTO_SIZED_ENCODERS = {"image_cnn", "audio_cnn"}
#: blocks -> output width of the auto-sized CNNs (widths double block by block up to it)
AUTO_CNN_DIM = {1: 64, 2: 128, 3: 128, 4: 192, 5: 256, 6: 384}
#: an auto-sized `image_cnn` halves the picture down to this map side (4x4 positions,
#: max-pooled: a small object anywhere in the picture still shows; a 2x2 map, or the
#: mean of the positions, retrieved far worse on the shapes data, bench/RESULTS.md)
IMAGE_MAP_SIDE = 4
#: what `pooling: auto` means for an `image_cnn` (resolved while the config is read)
IMAGE_CNN_POOLING = "max"


def auto_cnn_size(side: int, map_side: int = 2) -> dict[str, int]:
    """`layers` and `dim` of an `image_cnn` / `audio_cnn` for inputs `side` pixels (or mel
    bins / frames) across: halve the map until it is `map_side` x `map_side` or less, at
    most 6 blocks, and widen the last block with depth (`AUTO_CNN_DIM`: 128 for 2-3
    blocks, then 192, 256, 384). Images stop at a 4x4 map (`IMAGE_MAP_SIDE`: 28 or 32
    pixels -> 3 blocks, 64 -> 4, 224 -> 6); audio at 2x2 (64 mel bins -> 5 blocks)."""
    halvings = (max(side, 2) - 1).bit_length() - (map_side - 1).bit_length()
    layers = min(6, max(1, halvings))  # ceil(log2(side / map_side))
    return {"layers": layers, "dim": AUTO_CNN_DIM[layers]}


def _size_encoder(
    data: Any, default_type: str, side: int, map_side: int = 2, pooling: str | None = None
) -> Any:
    """A modality's raw `data` with its auto-sized encoder's `dim` / `layers` filled in
    (those left out or `auto`) from the input's `side`, and `pooling` (when given) in place
    of a `pooling` left out or `auto`; anything else unchanged."""
    encoder = data.get("encoder")
    if encoder is None:
        fields: dict[str, Any] = {"type": default_type}
    elif isinstance(encoder, EncoderConfig):
        fields = encoder.model_dump(exclude_unset=True)
    elif isinstance(encoder, dict):
        fields = {k: v for k, v in encoder.items() if not (k in AUTO_SIZED_KEYS and v == "auto")}
    else:
        return data
    if fields.get("type") not in AUTO_SIZED_ENCODERS:
        return data
    filled: dict[str, Any] = {}
    missing = [key for key in AUTO_SIZED_KEYS if key not in fields]
    if missing:
        sized = auto_cnn_size(side, map_side)
        filled.update({key: sized[key] for key in missing})
    if pooling is not None and fields.get("pooling", "auto") == "auto":
        filled["pooling"] = pooling
    if not filled:
        return data
    return {**data, "encoder": {**fields, **filled}}


def _field(data: dict[str, Any], model: type[BaseModel], name: str) -> Any:
    """`data[name]`, else the model's default for it."""
    return data.get(name, model.model_fields[name].default)


# --------------------------------------------------------------------------- modalities


def _check_encoder_kind(encoder: EncoderConfig, kind: str, data: str) -> None:
    if kind not in ENCODER_KINDS[encoder.type]:
        able = [name for name, kinds in ENCODER_KINDS.items() if kind in kinds]
        raise ValueError(
            f"encoder `{encoder.type}` cannot encode {data}; for {kind}: {', '.join(able)}"
        )


class VlmConfig(_Strict):
    """Which large vision-language model answers (`plait.vlm.backends.make_backend`).

    `provider: hub` runs `model` (a hub name or a local folder) on this machine;
    `provider: openai` sends requests to the OpenAI-compatible server at `base_url`
    (required: there is no default host, since it sends your pictures off the machine)
    with the key from the environment variable `api_key_env` (null: no key). Answers are
    cached on disk by content, prompt and model (`cache_dir`, default ~/.cache/plait/vlm).
    """

    provider: Literal["hub", "openai"] = "hub"
    model: str
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(8, ge=1)
    concurrency: int = Field(4, ge=1)
    requests_per_minute: float | None = Field(None, gt=0)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0)
    cache: bool = True
    cache_dir: str | None = None

    @model_validator(mode="after")
    def _where(self) -> VlmConfig:
        if self.provider == "openai" and not self.base_url:
            raise ValueError(
                "provider `openai` needs `base_url` (e.g. https://api.openai.com/v1 or "
                "http://localhost:8000/v1): there is no default, it sends your data there"
            )
        if self.provider == "hub" and self.base_url:
            raise ValueError("`base_url` is for provider `openai`; a hub model runs here")
        return self


class DescribeConfig(VlmConfig):
    """A text modality written by a large model: its description of each row's picture
    in column `image` (paths relative to the table, as for an image modality), asked with
    the named `template` or your own `prompt` (`plait.vlm.prompts`)."""

    image: str
    template: str = "brief"
    prompt: str | None = None
    max_new_tokens: int = Field(64, ge=1)


class TextModality(_Strict):
    """A text column. Scratch encoders use Plait's own vocabulary, hub encoders their tokenizer."""

    kind: Literal["text"] = "text"
    column: str
    encoder: EncoderConfig = EncoderConfig(type="text_cnn")
    max_length: int = Field(64, ge=1, description="tokens kept per text")
    lowercase: bool = True
    strip_html: bool = False
    vocab_size: int = Field(20000, ge=16, description="scratch encoders: most frequent words kept")
    min_freq: int = Field(1, ge=1)
    #: the column is written by a large model describing a picture (see DescribeConfig)
    describe: DescribeConfig | None = None

    @model_validator(mode="after")
    def _text_encoder(self) -> TextModality:
        _check_encoder_kind(self.encoder, "text", "text")
        return self


class ImageModality(_Strict):
    """An image column of file paths (relative to the manifest) or, in a DataFrame, arrays.

    `augment` is a list of transforms (`ImageTransform`); `true` is read as the set the
    one switch used to mean (`LEGACY_IMAGE_AUGMENT`, flip included), `false` as none.
    """

    kind: Literal["image"] = "image"
    column: str
    encoder: EncoderConfig = EncoderConfig(type="image_cnn")
    size: int = Field(64, ge=8, description="images are resized to size x size")
    channels: Literal[1, 3] = 3
    mean: list[float] | None = None
    std: list[float] | None = None
    augment: list[ImageTransform] = Field(
        default_factory=_default_image_augment,
        description="training-time transforms; true = the old set (with hflip), false = none",
    )
    max_pixels: int = Field(
        89_478_485, gt=0, description="decompression-bomb limit, as Pillow's default"
    )

    @field_validator("augment", mode="before")
    @classmethod
    def _augment_switch(cls, value: Any) -> Any:
        return _augment_list(value, LEGACY_IMAGE_AUGMENT)

    @model_validator(mode="before")
    @classmethod
    def _auto_sizes(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(_field(data, cls, "size"), int):
            return data
        side = _field(data, cls, "size")
        return _size_encoder(data, "image_cnn", side, IMAGE_MAP_SIDE, IMAGE_CNN_POOLING)

    @model_validator(mode="after")
    def _image_encoder(self) -> ImageModality:
        _check_encoder_kind(self.encoder, "image", "images")
        return self


class AudioModality(_Strict):
    """An audio column of file paths; decoded with soundfile, mixed to mono, resampled.

    `augment` is a list of transforms (`AudioTransform`); `true` is `[spec_augment]` with
    `time_masks`/`freq_masks`. `spec_augment: true` is the older switch for the same.
    """

    kind: Literal["audio"] = "audio"
    column: str
    encoder: EncoderConfig = EncoderConfig(type="audio_cnn")
    sample_rate: int = Field(16000, gt=0)
    duration: float = Field(2.0, gt=0, description="seconds; clips are padded or cropped")
    max_duration: float = Field(
        3600.0, gt=0, description="seconds; a longer file is a bad row (a guard, not a crop)"
    )
    n_mels: int = Field(64, ge=8)
    n_fft: int = Field(512, ge=32)
    hop_length: int = Field(160, ge=1)
    spec_augment: bool = False
    time_masks: int = Field(2, ge=0)
    freq_masks: int = Field(2, ge=0)
    augment: list[AudioTransform] = Field(
        default_factory=list, description="training-time transforms; true = spec_augment"
    )

    @field_validator("augment", mode="before")
    @classmethod
    def _augment_switch(cls, value: Any, info: ValidationInfo) -> Any:
        masks = {k: info.data[k] for k in ("time_masks", "freq_masks") if k in info.data}
        return _augment_list(value, (SpecAugment(**masks),))

    @property
    def transforms(self) -> list[TimeShift | Gain | SpecAugment]:
        """`augment`, plus the older switch `spec_augment: true` (with `time_masks` and
        `freq_masks`) when the list has no `spec_augment` of its own."""
        transforms = list(self.augment)
        if self.spec_augment and not any(t.name == "spec_augment" for t in transforms):
            masks = SpecAugment(time_masks=self.time_masks, freq_masks=self.freq_masks)
            transforms.append(masks)
        return transforms

    @model_validator(mode="before")
    @classmethod
    def _auto_sizes(cls, data: Any) -> Any:
        """Sized from the smaller side of the log-mel map: mel bins or frames."""
        if not isinstance(data, dict):
            return data
        try:
            seconds = float(_field(data, cls, "duration"))
            frames = int(seconds * int(_field(data, cls, "sample_rate"))) // int(
                _field(data, cls, "hop_length")
            )
            side = min(int(_field(data, cls, "n_mels")), frames + 1)
        except (TypeError, ValueError, ZeroDivisionError):
            return data  # the fields' own validation names the bad value
        return _size_encoder(data, "audio_cnn", side)

    @model_validator(mode="after")
    def _audio_encoder(self) -> AudioModality:
        _check_encoder_kind(self.encoder, "audio", "audio")
        return self


ModalityConfig = Annotated[
    TextModality | ImageModality | AudioModality, Field(discriminator="kind")
]

# ------------------------------------------------------------------------------- fusion


class FusionOptions(_Strict):
    """What every fusion reads: the fused width and the dropout on the fused vector.

    Each fusion names its options model in `FUSION_OPTIONS` (and as its class's `Options`);
    a fusion with options of its own subclasses this one. Defaults live here, once.

    Args:
        dim: width of the fused vector (and of each modality's projection).
        dropout: dropout on the fused vector (`late`: inside each modality's head).
    """

    dim: int = Field(128, gt=0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)


class CrossAttentionOptions(FusionOptions):
    """`cross_attention`: `layers` co-attention layers of `heads` heads (heads divide dim)."""

    heads: int = Field(4, ge=1)
    layers: int = Field(1, ge=1)


class TensorOptions(FusionOptions):
    """`tensor`: each modality is projected to `tensor_dim` (+ a constant 1) before the outer
    product, which has (tensor_dim + 1) ** n_modalities entries."""

    tensor_dim: int = Field(16, ge=1)


class LowRankOptions(TensorOptions):
    """`low_rank`: the tensor fusion's weight factored into `rank` modality-wise factors."""

    rank: int = Field(4, ge=1)


FUSION_OPTIONS: dict[str, type[FusionOptions]] = {
    "concat": FusionOptions,
    "sum": FusionOptions,
    "gated": FusionOptions,
    "attention": FusionOptions,
    "cross_attention": CrossAttentionOptions,
    "tensor": TensorOptions,
    "low_rank": LowRankOptions,
    "late": FusionOptions,
}
"""`fusion.method` -> the options model of that fusion (`plait.fusion.FUSIONS` holds the code)."""


class _FusionChoice(_Strict):
    method: str = "concat"

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        return _choice(value, FUSION_OPTIONS)


class FusionConfig(CrossAttentionOptions, LowRankOptions, _FusionChoice):
    """How modalities are combined: `method` plus the options of every fusion, flat.

    The YAML block stays flat (`fusion: {method: low_rank, dim: 64, rank: 8}`), so configs
    and saved folders of every version load unchanged. Its fields are the union of the
    options models above (inherited, so each default is written once); `options()` gives
    the chosen fusion only the fields its own model declares. A key that the chosen fusion
    does not read, set to a value other than its default, draws a warning that names the
    key and the fusion (see `unused_options`): not an error, because a saved folder's
    config carries every key and an ignored value loses nothing.

    Args:
        method: `concat`, `sum`, `gated`, `attention`, `cross_attention`, `tensor`,
            `low_rank` or `late` (the keys of `FUSION_OPTIONS`).
        dim, dropout: every fusion (`FusionOptions`).
        heads / layers: `cross_attention` depth and heads (`CrossAttentionOptions`).
        rank: `low_rank` factor rank (`LowRankOptions`).
        tensor_dim: `tensor` / `low_rank` per-modality width before the outer product.
        modality_dropout: training only, read by the model, not the fusion: chance to hide
            each modality of a sample (never all of them), so the model learns to cope
            when one is missing.
    """

    modality_dropout: float = Field(0.0, ge=0.0, lt=1.0)

    def options(self, method: str | None = None) -> FusionOptions:
        """The options model of `method` (default: `self.method`) filled from this block."""
        model = FUSION_OPTIONS[method or self.method]
        return model.model_validate(self.model_dump(include=set(model.model_fields)))

    def unused_options(self, method: str | None = None) -> list[str]:
        """Keys set away from their default that the fusion `method` does not read."""
        used = set(FUSION_OPTIONS[method or self.method].model_fields)
        used |= {"method", "modality_dropout"}
        return [
            name
            for name, field in type(self).model_fields.items()
            if name not in used and getattr(self, name) != field.default
        ]


# --------------------------------------------------------------------------------- head


class HeadConfig(_Strict):
    """The task and its loss.

    Args:
        task: `classification` (one class per row), `multilabel` (any subset of labels;
            the label column holds `a|b|c` or several label columns are given), or
            `regression` (one or more numeric columns).
        hidden: width of the MLP hidden layer; 0 for a single linear layer.
        label_smoothing: classification only.
        class_weights: `none`, `balanced` (inverse frequency in the training split).
        loss: regression loss, `mse` or `huber`.
    """

    task: Literal["classification", "multilabel", "regression"] = "classification"
    hidden: int = Field(128, ge=0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    class_weights: Literal["none", "balanced"] = "none"
    loss: Literal["mse", "huber"] = "mse"
    label_separator: str = "|"


# ---------------------------------------------------------------------------- alignment


class ObjectiveConfig(_Strict):
    """One alignment objective and its weight in the summed loss.

    `clip`: symmetric InfoNCE with a learnable temperature; `siglip`: pairwise sigmoid
    loss with a learnable temperature and bias; `itm`: image(audio)-text matching, a binary
    head over a cross-attention fusion of the pair, trained on in-batch hard negatives
    mined from the contrastive similarities; `mlm`: masked language modelling of the text
    with the other modality as cross-attention context; `mrm`: masked region modelling,
    regions of the image (or spectrogram) input hidden and their mean values regressed
    back, with the other modality as cross-attention context.
    """

    name: Literal["clip", "siglip", "itm", "mlm", "mrm"]
    weight: float = Field(1.0, gt=0)


class AlignmentConfig(_Strict):
    """Learn one embedding space for two modalities (CLIP / SigLIP / CLAP style).

    With this block present a run trains an aligned model instead of a classifier; `head`
    and `fusion` are then only used by the `itm` objective (its cross-attention fusion).

    Args:
        pair: the two modality names to align (default: the two declared modalities).
        dim: width of the shared embedding space (the projection heads' output). A
            pretrained dual encoder (both towers from one CLIP / SigLIP / CLAP checkpoint)
            keeps its own projections and width.
        projection: `linear` or `mlp` (one hidden layer) on top of each tower.
        objectives: the losses and their weights, e.g. `[{name: clip}, {name: itm,
            weight: 0.5}]`.
        temperature: initial softmax temperature of `clip` (learned when
            `learn_temperature`; the logit scale is capped at 100 as in CLIP).
        siglip_scale / siglip_bias: initial logit scale and bias of `siglip` (10 and -10
            in the SigLIP paper).
        duplicates: rows of a batch whose inputs are identical (the same caption twice)
            are `positive` pairs of each other, `mask`ed out of the negatives, or `ignore`d
            (treated as negatives, plain CLIP).
        mlm_probability: share of text tokens masked for `mlm`.
        decoder_layers: cross-attention layers of the `mlm` and `mrm` decoders.
        mrm_ratio: share of the regions of an image / spectrogram hidden for `mrm` (the
            same count in every row: `round(mrm_ratio * regions)`, at least one, never all).
        mrm_grid: the regions `mrm` hides: `4` is a 4 x 4 grid over the input (image rows x
            columns; spectrogram frequency bands x time chunks), `[2, 8]` rows x columns.
        classes: class names for zero-shot evaluation (default: the label column's classes).
        templates: prompt templates for zero-shot, `{}` is replaced by a class name.
        relevance: what counts as a correct retrieval hit when evaluating: the row's own
            `pair`, or any row with the same `label` (needs `data.label`).
    """

    pair: list[str] | None = None
    dim: int = Field(256, gt=0)
    projection: Literal["linear", "mlp"] = "linear"
    objectives: list[ObjectiveConfig] = [ObjectiveConfig(name="clip")]
    temperature: float = Field(0.07, gt=0, lt=10)
    learn_temperature: bool = True
    siglip_scale: float = Field(10.0, gt=0)
    siglip_bias: float = -10.0
    duplicates: Literal["positive", "mask", "ignore"] = "positive"
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    decoder_layers: int = Field(1, ge=1)
    mrm_ratio: float = Field(0.3, gt=0, lt=1)
    mrm_grid: int | tuple[int, int] = 4
    classes: list[str] | None = None
    templates: list[str] = ["{}"]
    relevance: Literal["pair", "label"] = "pair"

    @model_validator(mode="after")
    def _check(self) -> AlignmentConfig:
        if not self.objectives:
            raise ValueError("`alignment.objectives` is empty: name at least one (clip, siglip)")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"`alignment.objectives` lists an objective twice: {names}")
        if not {"clip", "siglip"} & set(names):
            raise ValueError(
                "`alignment.objectives` needs `clip` or `siglip`: the shared embedding space "
                "(and the hard negatives of `itm`) come from a contrastive loss"
            )
        if self.pair is not None and (len(self.pair) != 2 or self.pair[0] == self.pair[1]):
            raise ValueError(
                f"`alignment.pair` must name two different modalities, got {self.pair}"
            )
        grid = self.region_grid
        if min(grid) < 1 or grid[0] * grid[1] < 2:
            raise ValueError(
                f"`alignment.mrm_grid` must give at least 2 regions of positive size, got "
                f"{self.mrm_grid}"
            )
        for template in self.templates:
            if "{}" not in template:
                raise ValueError(f"prompt template {template!r} has no `{{}}` for the class name")
        return self

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @property
    def region_grid(self) -> tuple[int, int]:
        """`mrm_grid` as (rows, columns)."""
        grid = self.mrm_grid
        return (grid, grid) if isinstance(grid, int) else (int(grid[0]), int(grid[1]))


# --------------------------------------------------------------------------- captioning


class CaptioningConfig(_Strict):
    """Generate the text of one modality (the caption) from another (an image or a sound).

    With this block present a run trains a captioner instead of a classifier: `head` and
    `fusion` are not used, and `data.label` is not needed. The caption modality's own
    processor tokenises the targets: Plait's word vocabulary (built on the training
    split) when its encoder is a scratch type, the tokenizer of its `encoder.model` when
    it is `huggingface` (a `hub` decoder needs the LM's own tokenizer there).

    Args:
        source: the modality captioned (image or audio; default: the one that is not text).
        caption: the text modality whose column holds the target captions (default: the
            text modality).
        decoder: `transformer` (a small Transformer decoder trained from scratch, with
            cross-attention to the source encoder's sequence) or `hub` (a causal LM, e.g.
            GPT-2, named by `model`, fed a learned prefix: ClipCap).
        model: hub name or local folder of the causal LM (`decoder: hub` only).
        dim / layers / heads / dropout: size of the scratch Transformer decoder.
        label_smoothing: of the token cross-entropy (padding is never scored).
        prefix_length: LM embeddings the ClipCap MLP mapper makes from the pooled source.
        freeze_lm: keep the hub LM's weights fixed (only the mapper trains).
        max_length: generated tokens at most (end token included).
        num_beams / length_penalty / no_repeat_ngram_size: the default decoding of
            `caption` and evaluation (greedy with 1 beam); sampling is a call option.
        valid_captions: decode the validation split greedily each epoch and log
            `valid/bleu_4` and `valid/cider_d` (monitor them to choose the checkpoint).
    """

    source: str | None = None
    caption: str | None = None
    decoder: Literal["transformer", "hub"] = "transformer"
    model: str | None = None
    dim: int = Field(128, gt=0)
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    prefix_length: int = Field(10, ge=1)
    freeze_lm: bool = True
    max_length: int = Field(32, ge=1)
    num_beams: int = Field(1, ge=1)
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = Field(0, ge=0)
    valid_captions: bool = True

    @model_validator(mode="after")
    def _check(self) -> CaptioningConfig:
        if self.decoder == "hub" and not self.model:
            raise ValueError("`captioning.decoder: hub` needs `model:` (hub name or local path)")
        if self.decoder != "hub" and self.model:
            raise ValueError(
                f"`captioning.model` is only used with `decoder: hub`, not {self.decoder}"
            )
        if self.decoder == "transformer" and self.dim % self.heads:
            raise ValueError(
                f"`captioning.dim` ({self.dim}) must be a multiple of `heads` ({self.heads})"
            )
        return self


def check_captioning(config: PlaitConfig, captioning: CaptioningConfig) -> tuple[str, str]:
    """(source, caption) modality names of a captioning config, or a ValueError saying
    which to name."""
    kinds = {name: m.kind for name, m in config.modalities.items()}
    texts = [n for n, k in kinds.items() if k == "text"]
    others = [n for n, k in kinds.items() if k != "text"]
    caption = captioning.caption or (texts[0] if len(texts) == 1 else None)
    source = captioning.source or (others[0] if len(others) == 1 else None)
    for key, name, choices in (("caption", caption, texts), ("source", source, others)):
        if name is None:
            raise ValueError(f"`captioning.{key}` is needed: name one of {sorted(choices)}")
        if name not in kinds:
            raise ValueError(f"`captioning.{key}` names `{name}`, not a modality ({sorted(kinds)})")
    assert caption is not None and source is not None
    if kinds[caption] != "text":
        raise ValueError(
            f"`captioning.caption` must be a text modality; `{caption}` is {kinds[caption]}"
        )
    if kinds[source] == "text":
        raise ValueError(
            f"`captioning.source` must be an image or audio modality; `{source}` is text"
        )
    encoder = config.modalities[caption].encoder
    if captioning.decoder == "hub" and encoder.type != "huggingface":
        raise ValueError(
            f"`captioning.decoder: hub` needs the LM's tokenizer for the captions: set "
            f"`modalities.{caption}.encoder: {{type: huggingface, model: {captioning.model}}}`"
        )
    return source, caption


# --------------------------------------------------------------------------------- vqa


class VqaConfig(_Strict):
    """Answer a question (a text modality) about a picture or a sound (the context).

    With this block present a run trains a question answerer: the answer column is
    `data.label` (its values, as found in the training split, are the answer vocabulary),
    `fusion` and `head` are not used (except `head.label_smoothing`); the answer head is
    `head`, with its own `head_options`.

    Args:
        context: the image or audio modality asked about (default: the one that is not
            text). Its encoder must be a scratch `image_cnn`, `image_lenet`, `audio_cnn`
            or `audio_lenet` (their feature map is what the head sees) or a hub tower
            (its token states, as a one-row map).
        question: the text modality holding the question (default: the text modality).
        head: the answer head, a row of `plait.heads.vqa.VQA_HEADS` (`fusion`, the
            CNN+MLP baseline; `film`, `relation`, `transformer`); checked when the model
            is built.
        head_options: the head's own settings (its `Options` model; unknown keys are
            refused naming the closest one).
        type_columns: columns of the question type (e.g. `question_type`, `relation`);
            accuracy is reported per value of each, beside the overall accuracy.
        answer: `classify` (the head scores every answer of the vocabulary) or
            `generate` (the captioning decoder writes the answer word by word, attending
            to the map's cells and the question's words; `head` is then not used and
            `head_options` are the decoder's: dim, layers, heads, dropout, max_length).
        group_questions: training batches are drawn as chunks of this many questions about
            one context (rows with the same picture or sound file), chunks shuffled; 1 is
            a plain shuffle of rows. The model encodes each distinct context of a batch
            once, so k questions a picture cost about one picture pass instead of k. The
            order still depends only on (seed, epoch). Needs several questions a context
            in the data (`plait data vqa reasoning` asks 36).
    """

    context: str | None = None
    question: str | None = None
    head: str = "fusion"
    head_options: dict[str, Any] = Field(default_factory=dict)
    type_columns: list[str] = Field(default_factory=list)
    answer: Literal["classify", "generate"] = "classify"
    group_questions: int = Field(default=1, ge=1)

    @field_validator("type_columns", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _head_or_decoder(self) -> VqaConfig:
        # saved configs carry every key, the default head included: only another is refused
        if self.answer == "generate" and self.head != "fusion":
            raise ValueError(
                f"`vqa.head: {self.head}` is not used with `vqa.answer: generate` (the caption "
                "decoder writes the answer): remove `vqa.head`, or use `vqa.answer: classify`"
            )
        return self


def check_vqa(config: PlaitConfig, vqa: VqaConfig) -> tuple[str, str]:
    """(context, question) modality names of a VQA config, or a ValueError saying which to
    name."""
    kinds = {name: m.kind for name, m in config.modalities.items()}
    texts = [n for n, k in kinds.items() if k == "text"]
    others = [n for n, k in kinds.items() if k != "text"]
    question = vqa.question or (texts[0] if len(texts) == 1 else None)
    context = vqa.context or (others[0] if len(others) == 1 else None)
    for key, name, choices in (("question", question, texts), ("context", context, others)):
        if name is None:
            raise ValueError(f"`vqa.{key}` is needed: name one of {sorted(choices)}")
        if name not in kinds:
            close = difflib.get_close_matches(name, list(kinds), n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise ValueError(f"`vqa.{key}` names `{name}`, not a modality.{hint}")
    assert question is not None and context is not None
    if kinds[question] != "text":
        raise ValueError(
            f"`vqa.question` must be a text modality; `{question}` is {kinds[question]}"
        )
    if kinds[context] == "text":
        raise ValueError(f"`vqa.context` must be an image or audio modality; `{context}` is text")
    if len(config.modalities) != 2:
        raise ValueError(
            f"a `vqa:` run reads two modalities (context and question), not "
            f"{len(config.modalities)}: {sorted(kinds)}"
        )
    if config.head.task != "classification":
        raise ValueError("a `vqa:` run classifies answers: leave `head.task` as classification")
    return context, question


# --------------------------------------------------------------------------------- data


class SplitConfig(_Strict):
    """How validation and test rows are taken when no separate files are given.

    `group` keeps every value of `data.group` in one split only (one speaker never in both
    train and test); `stratified` keeps class proportions; `random` is plain shuffling.
    """

    method: Literal["random", "stratified", "group"] = "stratified"
    valid: float = Field(0.1, ge=0.0, lt=1.0)
    test: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0


class DataConfig(_Strict):
    """Where the rows are and what the columns mean.

    `train` is required; with no `valid`/`test` file those splits are cut from it by
    `split`. Paths inside a manifest are relative to the manifest's own folder.
    """

    train: str
    valid: str | None = None
    test: str | None = None
    label: str | list[str] | None = None
    id: str | None = None
    group: str | None = None
    split: SplitConfig = SplitConfig()
    on_error: Literal["raise", "skip"] = "raise"


# ----------------------------------------------------------------------------- training


Precision = Literal["auto", "32", "16-mixed", "bf16-mixed"]


class TrainingConfig(_Strict):
    """Optimisation and the Lightning trainer.

    `threads: 0` picks a measured default for this machine (see README, "CPU threads").
    `strategy: ddp` with `devices: 2` runs two processes (gloo on CPU, NCCL on GPU).
    `on_nonfinite`: a NaN or infinite training loss stops the run naming the step and rows
    (`raise`), or its batch is skipped without an optimizer step and counted (`skip`); a
    non-finite validation metric always stops the run.
    `monitor` picks the best checkpoint (and drives early stopping); `monitor_mode` says
    whether it is better `max`imised or `min`imised; `auto` maximises accuracy, F1, AUROC,
    R² (`r2`) and recall (`R@k`) and minimises everything else (losses, errors).
    `time_limit` (`90s`, `10m`, `1.5h`; a bare number is seconds) stops training when it
    is spent (Lightning's `max_time`); the best checkpoint so far becomes the model.
    `cache_frozen`: a fully frozen hub tower's outputs are computed once per distinct input
    row and kept on the CPU, up to `cache_frozen_mib` MiB (`plait.training.frozen_cache`);
    `auto` and `true` cache wherever that is exact (no augmentation of that modality),
    `false` never caches.
    """

    epochs: int = Field(10, ge=1)
    time_limit: str | None = None
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0, description="0 disables clipping")
    accumulate: int = Field(1, ge=1)
    precision: Precision = "auto"
    early_stopping: int = Field(0, ge=0, description="patience in epochs; 0 disables")
    on_nonfinite: Literal["raise", "skip"] = "raise"
    monitor: str = "valid/loss"
    monitor_mode: Literal["auto", "min", "max"] = "auto"
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    threads: int = Field(0, ge=0)
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    devices: int | Literal["auto"] = 1
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    progress: bool = True
    tensorboard: bool = True
    cache_frozen: bool | Literal["auto"] = "auto"
    cache_frozen_mib: int = Field(2048, ge=0, description="memory cap of the frozen cache")

    @field_validator("time_limit", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = f"{value:g}s"
        parse_duration(value)
        return str(value).strip()

    @field_validator("cache_frozen", mode="before")
    @classmethod
    def _cache_switch(cls, value: Any) -> Any:
        text = str(value).strip().lower()
        if isinstance(value, bool) or text == "auto":
            return value if isinstance(value, bool) else "auto"
        if text in ("true", "false"):
            return text == "true"
        raise ValueError("must be auto, true or false")

    @property
    def time_limit_seconds(self) -> float | None:
        return None if self.time_limit is None else parse_duration(self.time_limit)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """`90`, `90s`, `10m`, `1.5h` -> seconds (a positive number)."""
    match = _DURATION.match(str(value))
    if match is None or not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(
            f"time limit {value!r} is not a duration: write a number with s, m or h (90s, 10m, 1.5h)"
        )
    seconds = float(match[1]) * _UNIT_SECONDS[match[2].lower()]
    if seconds <= 0:
        raise ValueError(f"time limit {value!r} must be more than 0 seconds")
    return seconds


class EvaluationConfig(_Strict):
    """What the report contains."""

    report: bool = True
    plots: bool = True


# ------------------------------------------------------------------------------ the run


#: The version of this schema, written into every saved config.yaml. Raise it when a
#: change needs old configs rewritten, and add the rewrite to `migrate_config`.
CONFIG_VERSION = 2


class PlaitConfig(_Strict):
    """A whole run: data, one entry per modality, fusion, head, training, evaluation.

    `config_version` is the schema version the config was written for (set by Plait; a
    config without it is read as written for the first schema and migrated).

    `init_from`: a saved Plait model folder (e.g. an aligned model's `runs/<name>/model`)
    whose towers start this run: each modality takes the encoder weights of the folder's
    modality with the same name, else of its only modality of the same kind, when the
    encoder blocks agree (`plait.tasks.init_from`). Relative to the config file's folder,
    as data paths are. Read once when training starts; the saved model stands alone.
    """

    config_version: int = CONFIG_VERSION
    name: str = "plait-run"
    output_dir: str = "runs"
    init_from: str | None = None
    data: DataConfig
    modalities: dict[str, ModalityConfig]
    fusion: FusionConfig = FusionConfig()
    head: HeadConfig = HeadConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    alignment: AlignmentConfig | None = None
    captioning: CaptioningConfig | None = None
    vqa: VqaConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> PlaitConfig:
        if not self.modalities:
            raise ValueError("`modalities` is empty: declare at least one text/image/audio column")
        if self.vqa is not None:
            if self.alignment is not None or self.captioning is not None:
                raise ValueError("a run has one of `alignment:`, `captioning:` or `vqa:`")
            if self.data.label is None:
                raise ValueError(
                    "`data.label` is required: name the answer column of the `vqa:` run"
                )
            check_vqa(self, self.vqa)
        if self.alignment is not None:
            self._check_alignment(self.alignment)
        if self.captioning is not None:
            if self.alignment is not None:
                raise ValueError("a run has `alignment:` or `captioning:`, not both")
            check_captioning(self, self.captioning)
        elif self.alignment is None and self.data.label is None:
            raise ValueError(
                "`data.label` is required: name the label column(s) "
                "(only `alignment:` and `captioning:` runs train without labels)"
            )
        if self.head.task != "multilabel" and self.head.task != "regression":
            if isinstance(self.data.label, list) and len(self.data.label) > 1:
                raise ValueError(
                    "several `data.label` columns need `head.task: multilabel` or `regression`"
                )
        if self.data.split.method == "group" and not self.data.group:
            raise ValueError("`data.split.method: group` needs `data.group: <column>`")
        return self

    def unused_fusion_options(self) -> list[str]:
        """One line per `fusion` key set to no effect (see `FusionConfig`: a warning, not an
        error). An aligned model builds only the `itm` objective's cross-attention fusion."""
        method = "cross_attention" if self.alignment is not None else self.fusion.method
        options = ", ".join(FUSION_OPTIONS[method].model_fields)
        return [
            f"`fusion.{key}: {getattr(self.fusion, key)}` is not read by fusion `{method}` "
            f"(its options: {options}); it is ignored"
            for key in self.fusion.unused_options(method)
        ]

    def _check_alignment(self, alignment: AlignmentConfig) -> None:
        pair = alignment.pair
        if pair is None:
            if len(self.modalities) != 2:
                raise ValueError(
                    f"`alignment.pair` is needed with {len(self.modalities)} modalities: "
                    f"name two of {sorted(self.modalities)}"
                )
            pair = list(self.modalities)
        for name in pair:
            if name not in self.modalities:
                close = difflib.get_close_matches(name, list(self.modalities), n=1)
                hint = f" Did you mean `{close[0]}`?" if close else ""
                raise ValueError(f"`alignment.pair` names `{name}`, not a modality.{hint}")
        kinds = [self.modalities[n].kind for n in pair]
        needs_text = {"mlm"} & set(alignment.objective_names)
        if needs_text and "text" not in kinds:
            raise ValueError("the `mlm` objective needs a text modality in `alignment.pair`")
        if "mrm" in alignment.objective_names and set(kinds) == {"text"}:
            raise ValueError(
                "the `mrm` objective masks image or audio regions: `alignment.pair` needs an "
                "image or audio modality"
            )
        if alignment.relevance == "label" and self.data.label is None:
            raise ValueError("`alignment.relevance: label` needs `data.label`")

    @property
    def aligned_pair(self) -> tuple[str, str]:
        """The two aligned modality names (alignment runs only)."""
        if self.alignment is None:
            raise ValueError("not an alignment config")
        pair = self.alignment.pair or list(self.modalities)
        return pair[0], pair[1]

    @property
    def captioning_pair(self) -> tuple[str, str]:
        """(source, caption) modality names (captioning runs only)."""
        if self.captioning is None:
            raise ValueError("not a captioning config")
        return check_captioning(self, self.captioning)

    @property
    def vqa_pair(self) -> tuple[str, str]:
        """(context, question) modality names (VQA runs only)."""
        if self.vqa is None:
            raise ValueError("not a VQA config")
        return check_vqa(self, self.vqa)

    @property
    def label_columns(self) -> list[str]:
        if self.data.label is None:
            return []
        return [self.data.label] if isinstance(self.data.label, str) else list(self.data.label)

    # ------------------------------------------------------------------ YAML round trip
    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> PlaitConfig:
        """Load and validate a YAML file; `overrides` are `a.b.c=value` strings.

        Relative data paths are resolved against the YAML file's folder, so a config works
        from any working directory.
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
        for item in overrides or []:
            apply_override(raw, item)
        config = cls.from_dict(raw, source=str(path)).resolve_paths(path.parent)
        if config.init_from is not None and not Path(config.init_from).is_dir():
            raise ConfigError(
                f"{path}: `init_from: {config.init_from}` is not a folder; name a saved Plait "
                "model folder (e.g. runs/<name>/model)"
            )
        return config

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> PlaitConfig:
        raw = migrate_config(raw, source)
        try:
            config = cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(explain_validation_error(exc, source)) from None
        for line in config.unused_fusion_options():
            warnings.warn(f"{source}: {line}", UserWarning, stacklevel=2)
        return config

    def resolve_paths(self, base: Path) -> PlaitConfig:
        """Make data paths absolute against `base` (the config file's folder)."""
        data = self.data.model_copy()
        for key in ("train", "valid", "test"):
            value = getattr(data, key)
            if value and not Path(value).is_absolute():
                setattr(data, key, str((base / value).resolve()))
        out = Path(self.output_dir)
        output_dir = str(out if out.is_absolute() else (base / out).resolve())
        update: dict[str, Any] = {"data": data, "output_dir": output_dir}
        if self.init_from is not None and not Path(self.init_from).is_absolute():
            update["init_from"] = str((base / self.init_from).resolve())
        return self.model_copy(update=update)

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
        if path is not None:
            from plait.utils.io import atomic_write_text

            atomic_write_text(Path(path), text)
        return text


# ---------------------------------------------------------------------------- migration


def migrate_config(raw: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """`raw` rewritten for the current schema (`CONFIG_VERSION`).

    A config without `config_version` is version 0: every config written before versions
    existed (saved model folders included). Versions 0 and 1 read like 2, except that an
    `image_cnn` whose `pooling` says `auto` meant the mean of its positions then (it means
    `max` since version 2): it is rewritten to `mean`, so saved models keep their outputs.
    A config from a newer Plait is refused, not guessed at.
    """
    version = raw.get("config_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ConfigError(f"{source}: `config_version` must be a whole number, got {version!r}")
    if version > CONFIG_VERSION:
        raise ConfigError(
            f"{source} was written for config version {version} by a newer Plait (this one "
            f"reads up to {CONFIG_VERSION}); upgrade Plait to use it"
        )
    if version < 2:
        raw = _image_cnn_auto_pooling_was_mean(raw)
    return {**raw, "config_version": CONFIG_VERSION}


def _image_cnn_auto_pooling_was_mean(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: `image_cnn` encoders that say `pooling: auto` say `mean` instead
    (one left without `pooling` takes the new default: a hand-written config)."""
    modalities = raw.get("modalities")
    if not isinstance(modalities, dict):
        return raw
    rewritten = dict(modalities)
    for name, modality in modalities.items():
        encoder = modality.get("encoder") if isinstance(modality, dict) else None
        if (
            isinstance(encoder, dict)
            and encoder.get("type") == "image_cnn"
            and encoder.get("pooling") == "auto"
        ):
            rewritten[name] = {**modality, "encoder": {**encoder, "pooling": "mean"}}
    return {**raw, "modalities": rewritten}


def monitor_mode(config: TrainingConfig) -> Literal["min", "max"]:
    """Whether the monitored metric is better high (`max`) or low (`min`)."""
    if config.monitor_mode != "auto":
        return config.monitor_mode
    name = config.monitor.rsplit("/", 1)[-1].lower()
    return (
        "max"
        if any(
            key in name
            for key in ("accuracy", "f1", "auroc", "r2", "r@", "bleu", "cider", "rouge", "meteor")
        )
        else "min"
    )


# ------------------------------------------------------------------------- error text


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `training.lr=0.01` style override to a raw config mapping (YAML-typed)."""
    if "=" not in item:
        raise ConfigError(f"override `{item}` must look like key.path=value")
    key, value = item.split("=", 1)
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override `{item}`: `{part}` is not a section")
    node[parts[-1]] = yaml.safe_load(value)


def _model_of(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is dict and len(args) == 2:
        return _DictOf(args[1])
    for arg in args:
        found = _model_of(arg)
        if found is not None:
            return found
    return None


class _DictOf:
    """Marker: the next location part is a free dict key (a modality name)."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.model_fields: dict[str, Any] = {}


def explain_validation_error(exc: ValidationError, source: str) -> str:
    """Turn pydantic's errors into lines that name the key and suggest a fix."""
    lines = [f"{source}: {exc.error_count()} problem(s) in the config"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = _display_loc(loc)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            valid = _valid_keys(loc)
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            listing = f" Valid keys here: {', '.join(sorted(valid))}." if valid else ""
            lines.append(f"  - unknown key `{key}`.{hint}{listing}")
            continue
        if err["type"] in ("literal_error", "union_tag_invalid"):
            lines.append(_unknown_choice(err, key))
            continue
        if err["type"] == "union_tag_not_found":  # e.g. a modality without `kind:`
            tag = str(err.get("ctx", {}).get("discriminator", "kind")).strip("'")
            lines.append(f"  - `{key}.{tag}` is required but missing")
            continue
        if err["type"] == "missing":
            lines.append(f"  - `{key}` is required but missing")
            continue
        got = err.get("input")
        shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
        lines.append(f"  - `{key}`: {message}{shown}")
    return "\n".join(lines)


def _unknown_choice(err: Any, key: str) -> str:
    """A value outside a fixed set of choices (a `Literal` field, or the `kind` tag that
    picks a modality type) -> the line naming it, the choices and the closest one."""
    ctx = err.get("ctx", {})
    if err["type"] == "union_tag_invalid":
        key = f"{key}.{str(ctx.get('discriminator', 'kind')).strip(chr(39))}"
        expected, got = str(ctx.get("expected_tags", "")), str(ctx.get("tag"))
    else:
        expected, got = str(ctx.get("expected", "")), str(err.get("input"))
    options = [o.strip().strip("'") for o in expected.replace(" or ", ",").split(",")]
    close = difflib.get_close_matches(got, options, n=1, cutoff=0.5)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    return f"  - `{key}`: `{got}` is not one of {expected}.{hint}"


def _display_loc(loc: tuple[Any, ...]) -> str:
    """`modalities.review.text.column` -> `modalities.review.column` (drop the union tag)."""
    parts = [str(p) for p in loc]
    if len(parts) > 2 and parts[0] == "modalities" and parts[2] in _KINDS:
        del parts[2]
    # `...augment.0.hflip.p` -> `...augment.0.p` (drop a transform's tag after its index)
    parts = [
        p
        for i, p in enumerate(parts)
        if not (i and p in TRANSFORM_MODELS and isinstance(_loc_int(parts[i - 1]), int))
    ]
    return ".".join(parts)


def _loc_int(part: str) -> int | None:
    """`"3"` -> 3 (a list index in an error location), anything else -> None."""
    return int(part) if part.isdigit() else None


_KINDS = {"text": TextModality, "image": ImageModality, "audio": AudioModality}


def _valid_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the block that holds `loc[-1]`, for 'did you mean' hints."""
    model: Any = PlaitConfig
    parts = list(loc[:-1])
    i = 0
    while i < len(parts):
        part = parts[i]
        fields = getattr(model, "model_fields", {})
        if isinstance(model, _DictOf):
            # skip the dict key (modality name); the value may be a tagged union
            model = model.value
            i += 1
            if i < len(parts) and parts[i] in ("text", "image", "audio"):
                model = _KINDS[parts[i]]
                i += 1
            continue
        if isinstance(part, int) and i + 1 < len(parts) and parts[i + 1] in TRANSFORM_MODELS:
            model = TRANSFORM_MODELS[parts[i + 1]]  # a list of tagged transforms
            i += 2
            continue
        if part in fields:
            model = _model_of(fields[part].annotation)
        else:
            return []
        i += 1
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else []
