"""Pretrained Hugging Face encoders behind the Plait `Encoder` contract.

Models are loaded by hub name or local folder through `AutoConfig` / `AutoModel` (never
pipelines), in float32. Special cases: CLIP / SigLIP checkpoints give their text or vision
tower, and encoder-decoder models (Whisper, T5, BART) keep only their encoder.
`load_weights=False` builds the same architecture from the config alone, for a saved Plait
model that restores its own weights; `save_hub_files` writes that config.

Freezing: `freeze` stops gradients to every backbone weight, and `unfreeze_last=N` trains
the last N entries of the model's layer list again. The layer list is found generically:
the `nn.ModuleList`s whose attribute name is `layer`, `layers`, `block`, `blocks` or
`stages`, minus those nested inside another such list (ConvNeXt stages hold `layers`),
and of those the longest. A fully frozen backbone also stays in eval mode (no dropout,
no BatchNorm statistics drift) and runs without autograd.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path

import torch
import transformers
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel

from plait.config import EncoderConfig
from plait.encoders.base import Encoder, EncoderOutput, masked_max, masked_mean

# model_type of a dual-encoder checkpoint -> the tower class to use for each modality
TOWERS = {
    "text": {"clip": "CLIPTextModel", "siglip": "SiglipTextModel", "siglip2": "Siglip2TextModel"},
    "image": {
        "clip": "CLIPVisionModel",
        "siglip": "SiglipVisionModel",
        "siglip2": "Siglip2VisionModel",
    },
}
LAYER_NAMES = {"layer", "layers", "block", "blocks", "stages"}


def load_backbone(name: str, kind: str, load_weights: bool) -> transformers.PreTrainedModel:
    """The backbone for `kind` (text/image/audio) from hub name or folder `name`."""
    hf_config = AutoConfig.from_pretrained(name)
    tower = TOWERS.get(kind, {}).get(hf_config.model_type)
    if tower is not None:
        cls = getattr(transformers, tower)
        if load_weights:
            verbosity = transformers.logging.get_verbosity()
            transformers.logging.set_verbosity_error()  # the other tower's keys are expected
            try:
                return cls.from_pretrained(name, dtype=torch.float32)
            finally:
                transformers.logging.set_verbosity(verbosity)
        return cls(cls.config_class.from_pretrained(name))  # picks the tower's sub-config
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
        self.pooling = config.pooling
        self.model: transformers.PreTrainedModel = load_backbone(
            config.model, self.kind, load_weights
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
        if self.pooling == "cls":
            return sequence[:, 0]  # [B, D]
        if self.pooling == "max":
            return masked_max(sequence, mask)
        pooler = getattr(out, "pooler_output", None) if self.pooling == "auto" else None
        if isinstance(pooler, Tensor) and pooler.dim() == 4 and pooler.shape[2:] == (1, 1):
            pooler = pooler.flatten(1)  # ResNet: [B, C, 1, 1] -> [B, C]
        if isinstance(pooler, Tensor) and pooler.shape == (sequence.shape[0], self.output_dim):
            return pooler
        return masked_mean(sequence, mask)


class HFTextEncoder(HFEncoder):
    """A pretrained text model (BERT, MiniLM, RoBERTa, ...) on its tokenizer's output."""

    kind = "text"

    def forward(self, **inputs: Tensor) -> EncoderOutput:
        mask = inputs.get("attention_mask")
        return self.encode(inputs, None if mask is None else mask.bool())


class HFImageEncoder(HFEncoder):
    """A pretrained image model (ViT, ConvNeXt, ResNet, CLIP/SigLIP vision tower)."""

    kind = "image"

    def forward(self, pixel_values: Tensor, **_: Tensor) -> EncoderOutput:
        inputs: dict[str, Tensor | bool] = {"pixel_values": pixel_values}  # [B, 3, H, W]
        size = getattr(self.model.config, "image_size", None)
        if "interpolate_pos_encoding" in self.accepted and size != pixel_values.shape[-1]:
            inputs["interpolate_pos_encoding"] = True  # ViT / CLIP at another resolution
        return self.encode(inputs, None)


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
        full = torch.tensor(sample_mask.shape[-1], device=sample_mask.device)
        steps = torch.arange(int(lengths_of(full)), device=sample_mask.device)  # [T]
        lengths = lengths_of(sample_mask.sum(-1)).to(torch.long)  # [B] real output frames
        return self.encode(inputs, steps.unsqueeze(0) < lengths.unsqueeze(1))  # mask [B, T]
