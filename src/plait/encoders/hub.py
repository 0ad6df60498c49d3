"""Pretrained Hugging Face encoders behind the Plait `Encoder` contract.

Models are loaded by hub name or local folder through `AutoConfig` / `AutoModel` (never
pipelines), in float32. Special cases: dual-encoder checkpoints (CLIP, SigLIP, SigLIP2,
CLAP) give their text, vision or audio tower (`TOWERS`), and encoder-decoder models
(Whisper, T5, BART) keep only their encoder. `load_weights=False` builds the same
architecture from the config alone, for a saved Plait model that restores its own weights;
`save_hub_files` writes that config (a tower's own config, which `TOWERS` also recognises).

`pooling: auto` pools the way the model was trained (`resolve_pooling`, recorded in the
saved folder as `hub/<name>/pooling.json`): when the model folder (local, or its snapshot in
the hub cache) holds a sentence-transformers config (`modules.json` naming a `Pooling`
module and its `config.json`), its mode (mean, CLS or max over tokens) and its `Normalize`
step (unit length) are used. Otherwise the architecture's default: the model's
`pooler_output` when it has one of width `output_dim` (BERT's tanh-dense CLS state, ...),
else the masked mean. A folder saved before the choice was recorded keeps that default,
which is what `auto` meant then. The `pooler_output`, for the towers, is exactly what the
checkpoint's `get_*_features` projects: CLIP
text's EOS-token state, CLIP vision's post-layernormed CLS state, SigLIP's pooler with its
head (last token + linear for text, attention-pooling head for vision), CLAP text's
tanh-dense CLS state and CLAP audio's average-pooled HTSAT output (`plait.encoders.dual`
holds the projections). SigLIP text towers were trained on fixed-length sequences and pool
the last position, so shorter batches are padded to `max_position_embeddings` (masked), on
the side the checkpoint's tokenizer pads, as its processor (`padding="max_length"`) does.
SigLIP2 (NaFlex) vision towers read patch sequences: square [B, 3, H, W] pixels are cut
into the same patches its image processor makes.

A name that cannot be loaded fails within seconds with one clear error (`check_hub_model`:
a local folder, then the local cache, then one short lookup on the hub unless
HF_HUB_OFFLINE is set), never after minutes of download retries.

Freezing: `freeze` stops gradients to every backbone weight, and `unfreeze_last=N` trains
the last N entries of the model's layer list again. The layer list is found generically:
the `nn.ModuleList`s whose attribute name is `layer`, `layers`, `block`, `blocks` or
`stages`, minus those nested inside another such list (ConvNeXt stages hold `layers`),
and of those the longest. A fully frozen backbone also stays in eval mode (no dropout,
no BatchNorm statistics drift) and runs without autograd.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import transformers
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel

from plait.config import EncoderConfig, PlaitConfig
from plait.encoders.base import Encoder, EncoderOutput, masked_max, masked_mean
from plait.errors import ConfigError
from plait.utils.io import atomic_write_json

# model_type of a dual-encoder checkpoint -> the tower class to use for each modality. A
# tower saved alone (its config's model_type, e.g. `clip_text_model`) maps to the same class.
TOWERS = {
    "text": {
        "clip": "CLIPTextModel",
        "siglip": "SiglipTextModel",
        "siglip2": "Siglip2TextModel",
        "clap": "ClapTextModel",
    },
    "image": {
        "clip": "CLIPVisionModel",
        "siglip": "SiglipVisionModel",
        "siglip2": "Siglip2VisionModel",
    },
    "audio": {"clap": "ClapAudioModel"},
}
# where a tower's weights sit in the dual checkpoint when the tower class does not keep that
# prefix itself (CLIPTextModel holds a `text_model` submodule; ClapTextModel does not)
TOWER_PREFIX = {("clap", "text"): "text_model.", ("clap", "audio"): "audio_model."}
# text towers that pool the last position of fixed-length input -> the side their
# tokenizer pads on (SiglipTokenizer: right; Siglip2Tokenizer: left)
FIXED_LENGTH_TEXT = {"siglip_text_model": "right", "siglip2_text_model": "left"}
LAYER_NAMES = {"layer", "layers", "block", "blocks", "stages"}
# the record of the pooling chosen, beside the hub config in a saved folder
POOLING_FILE = "pooling.json"
# sentence-transformers Pooling config key -> Plait pooling
ST_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}
ST_POOLING = "sentence_transformers.models.Pooling"
ST_NORMALIZE = "sentence_transformers.models.Normalize"

log = logging.getLogger("plait")


@dataclass(frozen=True)
class Pooling:
    """How a hub tower turns its sequence into one vector, and why.

    Attributes:
        mode: `pooler` (the model's own pooler output, mean when it has none), `mean`,
            `cls` or `max`.
        normalize: scale the pooled vector to unit length (sentence-transformers
            `Normalize`).
        source: where the choice came from, for the run log and the model card.
    """

    mode: str
    normalize: bool = False
    source: str = "config"

    def describe(self) -> str:
        """E.g. `mean + unit length (sentence-transformers config)`."""
        mode = "model's pooler output" if self.mode == "pooler" else f"{self.mode} over tokens"
        return f"{mode}{' + unit length' if self.normalize else ''} ({self.source})"


def model_file(name: str, filename: str, download: bool = False) -> Path | None:
    """`filename` inside model `name`: a local folder, else its hub-cache snapshot, else
    (with `download`, unless HF_HUB_OFFLINE is set) fetched from the hub. Loading a model
    by name caches only what transformers reads, not the sentence-transformers files."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    try:
        found = try_to_load_from_cache(name, filename)
    except Exception:  # not a valid repo name: no cached file either
        return None
    if isinstance(found, str):
        return Path(found)
    if not download or hub_offline() or found is not None:  # not None: known to be absent
        return None
    try:
        return Path(hf_hub_download(name, filename, etag_timeout=5))
    except Exception:  # absent from the repo, or the hub unreachable: no such config
        return None


def sentence_transformers_pooling(name: str) -> Pooling | None:
    """The pooling of model `name`'s sentence-transformers config, or None without one.

    Raises:
        ConfigError: the config is unreadable or asks for a pooling Plait lacks.
    """
    modules_path = model_file(name, "modules.json", download=True)
    if modules_path is None:
        return None
    try:
        modules = json.loads(modules_path.read_text())
        types = [str(m.get("type", "")) for m in modules]
        pooling = next((m for m in modules if m.get("type") == ST_POOLING), None)
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ConfigError(
            f"{modules_path}: not a readable sentence-transformers modules list ({exc})"
        ) from None
    if pooling is None:
        return None
    config_name = f"{str(pooling.get('path', '')).strip('/')}/config.json".lstrip("/")
    config_path = model_file(name, config_name, download=True)
    if config_path is None:
        raise ConfigError(
            f"{name}: modules.json names a Pooling module but {config_name} is missing; "
            "set `pooling:` (mean, cls or max) in the encoder config"
        )
    try:
        settings = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{config_path}: not a readable pooling config ({exc})") from None
    chosen = [mode for key, mode in ST_MODES.items() if settings.get(key)]
    others = sorted(
        key
        for key, on in settings.items()
        if key.startswith("pooling_mode_") and on and key not in ST_MODES
    )
    if len(chosen) != 1 or others:
        raise ConfigError(
            f"{config_path}: Plait pools with exactly one of {', '.join(ST_MODES)}; this "
            f"model asks for {', '.join(sorted(chosen + others)) or 'none'}: set `pooling:` "
            "(mean, cls or max) in the encoder config"
        )
    return Pooling(chosen[0], ST_NORMALIZE in types, "sentence-transformers config")


def resolve_pooling(config: EncoderConfig, load_weights: bool) -> Pooling:
    """The pooling a hub tower uses (rule in the module docstring).

    A saved folder (`load_weights=False`) reads its record; one saved before the record
    existed keeps what `auto` meant then: the architecture's default.
    """
    name = str(config.model)
    if not load_weights:
        record = model_file(name, POOLING_FILE)
        if record is not None:
            try:
                saved = json.loads(record.read_text())
                return Pooling(str(saved["mode"]), bool(saved["normalize"]), str(saved["source"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{record}: not a readable pooling record ({exc})") from None
        if config.pooling == "auto":
            return Pooling(
                "pooler", False, "architecture default, saved before pooling was recorded"
            )
    if config.pooling != "auto":
        return Pooling(config.pooling, False, "set in the config")
    found = sentence_transformers_pooling(name)
    if found is not None:
        return found
    return Pooling("pooler", False, "architecture default: no sentence-transformers config")


def tower_class(model_type: str, kind: str) -> type[transformers.PreTrainedModel] | None:
    """The `TOWERS` class for a dual checkpoint's or a lone tower's `model_type`, else None."""
    for dual_type, name in TOWERS.get(kind, {}).items():
        cls = getattr(transformers, name)
        if model_type in (dual_type, cls.config_class.model_type):
            return cls
    return None


def load_tower(
    cls: type[transformers.PreTrainedModel], name: str, prefix: str | None
) -> transformers.PreTrainedModel:
    """One tower's pretrained weights out of a dual checkpoint (or a lone tower's folder).

    Raises:
        ValueError: a tower parameter is not in the checkpoint (it would stay random).
    """
    key_mapping = {f"^{re.escape(prefix)}": ""} if prefix else None
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the other tower's keys are expected
    try:
        loaded: Any = cls.from_pretrained(
            name, dtype=torch.float32, output_loading_info=True, key_mapping=key_mapping
        )
    finally:
        transformers.logging.set_verbosity(verbosity)
    model, info = loaded
    params = {n for n, _ in model.named_parameters()}
    missing = sorted(k for k in info["missing_keys"] if k in params)
    if missing:
        raise ValueError(f"{name}: {cls.__name__} weights missing from the checkpoint: {missing}")
    return model


def check_hub_model(name: str, modality: str, timeout: float = 5.0) -> None:
    """Fail within seconds when `name` cannot be loaded, instead of transformers' minutes of
    retries and a long traceback: a local folder must hold a `config.json`; a hub name
    must be well formed, then is found in the local cache, or (unless HF_HUB_OFFLINE is
    set) by one lookup on the hub with a short `timeout`.

    `modality` names the config entry in the message (`caption`, `image`, ...).

    Raises:
        ConfigError: naming the modality, the name, what is wrong and what to do.
    """
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
    )
    from huggingface_hub.utils import validate_repo_id

    where = f"modality `{modality}`: model '{name}'"
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"{where} is a folder without config.json, so not a Hugging Face model "
                "(write one with `save_pretrained`)"
            )
        return
    if name.startswith(("/", "./", "../", "~", "\\")) or name.count("/") > 1:
        raise ConfigError(f"{where}: no such folder (check the path)")
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ConfigError(
            f"{where} is neither a local folder nor a valid Hugging Face name "
            "(`org/name`, e.g. `sentence-transformers/all-MiniLM-L6-v2`)"
        ) from None
    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    if hub_offline():
        raise ConfigError(
            f"{where} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
            "check the name for a typo, give a local folder, or download it once with "
            "network access (HF_HUB_OFFLINE unset)"
        )
    try:
        HfApi().model_info(name, timeout=timeout)
    except GatedRepoError:
        raise ConfigError(
            f"{where} is gated on the Hugging Face hub: accept its terms on the model page "
            "and log in (`hf auth login`), or give a local folder"
        ) from None
    except RepositoryNotFoundError:
        raise ConfigError(
            f"{where} does not exist on the Hugging Face hub (or is private): check the name "
            "for a typo, log in for a private model, or give a local folder"
        ) from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "an error")
        raise ConfigError(
            f"{where}: the Hugging Face hub answered {status}; try again later, or give a "
            "local folder"
        ) from None
    except Exception as exc:  # no network, DNS, proxy, timeout: the client's own types
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ConfigError(
            f"{where}: the Hugging Face hub could not be reached ({reason}) and the model is "
            "not in the local cache: connect, or download it elsewhere and give a local "
            "folder, or set HF_HUB_OFFLINE=1 to use only cached models"
        ) from None


def check_hub_models(config: PlaitConfig) -> None:
    """`check_hub_model` for every pretrained encoder of a config (each name once)."""
    seen: set[str] = set()
    for name, modality in config.modalities.items():
        model = modality.encoder.model
        if modality.encoder.type == "huggingface" and model and model not in seen:
            seen.add(model)
            check_hub_model(model, name)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as the environment says now (the hub client reads it only at import)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "")
    return constants.is_offline_mode() or value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def load_backbone(name: str, kind: str, load_weights: bool) -> transformers.PreTrainedModel:
    """The backbone for `kind` (text/image/audio) from hub name or folder `name`.

    Raises:
        ConfigError: `name` is not a loadable model (see `check_hub_model`).
    """
    check_hub_model(name, kind)
    hf_config = AutoConfig.from_pretrained(name)
    cls = tower_class(hf_config.model_type, kind)
    if cls is not None:
        if load_weights:
            return load_tower(cls, name, TOWER_PREFIX.get((hf_config.model_type, kind)))
        sub_config: Any = cls.config_class
        return cls(sub_config.from_pretrained(name))  # picks the tower's sub-config
    if load_weights:
        model = AutoModel.from_pretrained(name, dtype=torch.float32)
    else:
        model = AutoModel.from_config(hf_config)
    return model.get_encoder() if getattr(hf_config, "is_encoder_decoder", False) else model


def layer_list(model: nn.Module) -> nn.ModuleList | None:
    """The model's list of transformer layers / stages (rule in the module docstring)."""
    found = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in LAYER_NAMES
    }
    outer = [m for n, m in found.items() if not any(n.startswith(o + ".") for o in found)]
    return max(outer, key=len, default=None)


def hidden_width(hf_config: transformers.PretrainedConfig) -> int:
    """Feature width: `hidden_sizes[-1]` for CNNs (ResNet, ConvNeXt), else `hidden_size`."""
    sizes = getattr(hf_config, "hidden_sizes", None)
    if sizes:
        return int(sizes[-1])
    return int(hf_config.hidden_size)


class HFEncoder(Encoder):
    """Shared loading, freezing, pooling and saving; subclasses pick inputs and the mask."""

    kind = ""

    def __init__(self, config: EncoderConfig, load_weights: bool = True) -> None:
        super().__init__()
        if not config.model:
            raise ValueError("a huggingface encoder needs `model` (hub name or local folder)")
        self.model: transformers.PreTrainedModel = load_backbone(
            config.model, self.kind, load_weights
        )
        self.pooling_choice = resolve_pooling(config, load_weights)
        self.pooling = self.pooling_choice.mode
        if load_weights:
            log.info(
                "%s tower %s pools: %s", self.kind, config.model, self.pooling_choice.describe()
            )
        self.output_dim = hidden_width(self.model.config)
        self.accepted = set(inspect.signature(self.model.forward).parameters)
        self.fully_frozen = config.freeze and config.unfreeze_last == 0
        if config.freeze:
            self.model.requires_grad_(False)
            if config.unfreeze_last:
                layers = layer_list(self.model)
                if layers is None:
                    raise ValueError(f"{config.model}: no layer list found for unfreeze_last")
                for layer in layers[-config.unfreeze_last :]:
                    layer.requires_grad_(True)

    def train(self, mode: bool = True) -> HFEncoder:
        super().train(mode)
        if self.fully_frozen:
            self.model.eval()
        return self

    def save_hub_files(self, folder: str | Path) -> None:
        """Write the HF config so `load_weights=False` can rebuild this model offline."""
        self.model.config.save_pretrained(str(folder))
        choice = self.pooling_choice
        record = {"mode": choice.mode, "normalize": choice.normalize, "source": choice.source}
        atomic_write_json(Path(folder) / POOLING_FILE, record)

    def encode(self, inputs: Mapping[str, Tensor | bool], mask: Tensor | None) -> EncoderOutput:
        """Run the backbone on the inputs it accepts (tensors, and flags such as
        `interpolate_pos_encoding`); pool per `config.pooling`."""
        kwargs = {k: v for k, v in inputs.items() if k in self.accepted}
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.fully_frozen):
            out = self.model(**kwargs)
        sequence = out.last_hidden_state
        if sequence.dim() == 4:
            sequence = sequence.flatten(2).transpose(1, 2)  # [B, C, H, W] -> [B, H * W, C]
        if mask is None or mask.shape[1] != sequence.shape[1]:
            mask = torch.ones(sequence.shape[:2], dtype=torch.bool, device=sequence.device)
        return EncoderOutput(sequence, self._pool(out, sequence, mask), mask)

    def _pool(self, out: object, sequence: Tensor, mask: Tensor) -> Tensor:
        pooled = self._pool_mode(out, sequence, mask)
        return F.normalize(pooled, dim=-1) if self.pooling_choice.normalize else pooled

    def _pool_mode(self, out: object, sequence: Tensor, mask: Tensor) -> Tensor:
        if self.pooling == "cls":
            return sequence[:, 0]  # [B, D]
        if self.pooling == "max":
            return masked_max(sequence, mask)
        pooler = getattr(out, "pooler_output", None) if self.pooling == "pooler" else None
        if isinstance(pooler, Tensor) and pooler.dim() == 4 and pooler.shape[2:] == (1, 1):
            pooler = pooler.flatten(1)  # ResNet: [B, C, 1, 1] -> [B, C]
        if isinstance(pooler, Tensor) and pooler.shape == (sequence.shape[0], self.output_dim):
            return pooler
        return masked_mean(sequence, mask)


class HFTextEncoder(HFEncoder):
    """A pretrained text model (BERT, MiniLM, RoBERTa, ...) on its tokenizer's output."""

    kind = "text"

    def forward(self, **inputs: Tensor) -> EncoderOutput:
        side = FIXED_LENGTH_TEXT.get(self.model.config.model_type)
        if side is not None:
            inputs = {**inputs, **self.pad_to_fixed_length(inputs, left=side == "left")}
        mask = inputs.get("attention_mask")
        return self.encode(inputs, None if mask is None else mask.bool())

    def pad_to_fixed_length(self, inputs: Mapping[str, Tensor], left: bool) -> dict[str, Tensor]:
        """`input_ids` [B, T] (+ `attention_mask`, padded on either side) -> [B, L] padded
        with the config's pad id on one side, and its mask; L = `max_position_embeddings`."""
        ids = inputs["input_ids"]
        length = int(self.model.config.max_position_embeddings)
        if ids.shape[1] >= length:
            return {}
        mask = inputs.get("attention_mask", torch.ones_like(ids)).bool()  # [B, T]
        order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices
        real = ids.gather(1, order)  # [B, T] each row's real tokens first, in order
        counts = mask.sum(1, keepdim=True)  # [B, 1]
        steps = torch.arange(length, device=ids.device).unsqueeze(0)  # [1, L]
        source = steps - (length - counts) if left else steps.expand(ids.shape[0], -1)  # [B, L]
        keep = (source >= 0) & (source < counts)  # [B, L] real positions of the output
        padded = real.gather(1, source.clamp(0, ids.shape[1] - 1))  # [B, L]
        pad_id = int(self.model.config.pad_token_id or 0)
        return {"input_ids": padded.masked_fill(~keep, pad_id), "attention_mask": keep.long()}


class HFImageEncoder(HFEncoder):
    """A pretrained image model (ViT, ConvNeXt, ResNet, CLIP/SigLIP vision tower)."""

    kind = "image"

    def forward(self, pixel_values: Tensor, **extra: Tensor) -> EncoderOutput:
        if "spatial_shapes" in self.accepted:  # SigLIP2 (NaFlex) reads patch sequences
            return self.encode_patches(pixel_values, extra)
        inputs: dict[str, Tensor | bool] = {"pixel_values": pixel_values}  # [B, 3, H, W]
        size = getattr(self.model.config, "image_size", None)
        if "interpolate_pos_encoding" in self.accepted and size != pixel_values.shape[-1]:
            inputs["interpolate_pos_encoding"] = True  # ViT / CLIP at another resolution
        return self.encode(inputs, None)

    def encode_patches(self, pixel_values: Tensor, extra: Mapping[str, Tensor]) -> EncoderOutput:
        """SigLIP2: [B, 3, H, W] -> the [B, N, p * p * 3] patches (rows of (p_h, p_w, C))
        its image processor makes, with their grid and a full mask; its processor's own
        output (`spatial_shapes`, `pixel_attention_mask`) passes through unchanged."""
        if pixel_values.dim() == 3:
            mask = extra["pixel_attention_mask"]  # [B, N]
            inputs = {"pixel_values": pixel_values, "pixel_attention_mask": mask}
            return self.encode({**inputs, "spatial_shapes": extra["spatial_shapes"]}, mask.bool())
        b, c, h, w = pixel_values.shape
        p = int(self.model.config.patch_size)
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {p}")
        patches = pixel_values.reshape(b, c, h // p, p, w // p, p)  # [B, C, H/p, p, W/p, p]
        patches = patches.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)
        mask = torch.ones(patches.shape[:2], dtype=torch.long, device=patches.device)  # [B, N]
        grid = torch.tensor([[h // p, w // p]] * b, device=patches.device)  # [B, 2]
        inputs = {"pixel_values": patches, "pixel_attention_mask": mask, "spatial_shapes": grid}
        return self.encode(inputs, mask.bool())


class HFAudioEncoder(HFEncoder):
    """A pretrained audio model (wav2vec2, HuBERT, AST, Whisper's encoder).

    A sample-level `attention_mask` (wav2vec2 / HuBERT) or frame-level one (Whisper) is
    mapped to output frames with the model's `_get_feat_extract_output_lengths`; models
    without that (AST) ignore any mask and treat every output position as real.
    """

    kind = "audio"

    def forward(self, **inputs: Tensor) -> EncoderOutput:
        lengths_of = getattr(self.model, "_get_feat_extract_output_lengths", None)
        sample_mask = inputs.pop("attention_mask", None)
        if sample_mask is None or lengths_of is None:
            return self.encode(inputs, None)
        inputs["attention_mask"] = sample_mask  # [B, samples] or [B, frames]
        lengths = lengths_of(sample_mask.sum(-1)).to(torch.long)  # [B] real output frames
        return self.encode(inputs, None, lengths)

    def encode(
        self,
        inputs: Mapping[str, Tensor | bool],
        mask: Tensor | None,
        lengths: Tensor | None = None,
    ) -> EncoderOutput:
        """As `HFEncoder.encode`; `lengths` [B] (real output frames) become the mask over
        the frames the backbone returned, counted from its output rather than from the
        input length in Python, so an exported graph keeps the frame count dynamic."""
        if lengths is None:
            return super().encode(inputs, mask)
        kwargs = {k: v for k, v in inputs.items() if k in self.accepted}
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.fully_frozen):
            out = self.model(**kwargs)
        sequence = out.last_hidden_state  # [B, T, D]
        steps = torch.arange(sequence.shape[1], device=sequence.device)  # [T]
        mask = steps.unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
        return EncoderOutput(sequence, self._pool(out, sequence, mask), mask)
