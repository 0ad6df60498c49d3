"""The question-answering model: a context encoder that keeps its feature map, a question
encoder, and an answer head from `plait.heads.vqa.VQA_HEADS` (`vqa.head`).

The context is a picture or a sound. A scratch CNN (`image_cnn`, `image_lenet`,
`audio_cnn`, `audio_lenet`) is run up to its last feature map (B, C, H, W), before any
pooling, so relational heads can see where things are; any other encoder (a hub tower,
`audio_transformer`) gives its token states as a one-row map (B, D, 1, T). The question is
any text encoder's token states and pooled vector.

Each distinct context of a batch is encoded once (`vqa_dedup.distinct_rows`: exact, bit for
bit) and its map indexed back to every row that asks about it, so k questions about one
picture cost one CNN pass, not k. In eval mode the logits are those of encoding every row
(to float rounding). In training, a BatchNorm in the context encoder then takes its batch
statistics over the distinct contexts only (each picture counted once, not once per
question), and a dropout mask on the map is shared by the rows of one context. With
augmentation no two rows are identical and nothing changes.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import ValidationError
from torch import Tensor, nn

from plait.config import PlaitConfig
from plait.data import LabelSpace
from plait.encoders import build_encoder
from plait.encoders.audio import AudioCNNEncoder, LeNetAudioEncoder, pad_frames
from plait.encoders.base import EncoderOutput
from plait.encoders.image import ImageCNNEncoder, LeNetImageEncoder
from plait.errors import ConfigError
from plait.heads.vqa import VQA_HEADS, VqaHead, vqa_head_class
from plait.heads.vqa.base import VqaHeadOptions
from plait.heads.vqa.generative import GenerativeAnswerHead, GenerativeOptions
from plait.tasks.vqa_dedup import distinct_rows


def context_map(encoder: nn.Module, tensors: Mapping[str, Tensor]) -> tuple[Tensor, Tensor | None]:
    """The context's feature map (B, C, H, W) and its mask (B, H, W), None when every cell
    is real."""
    if isinstance(encoder, ImageCNNEncoder | LeNetImageEncoder):
        grid: Tensor = encoder.dropout(encoder.features(tensors["pixel_values"]))  # [B, C, H, W]
        return grid, None
    if isinstance(encoder, LeNetAudioEncoder):
        features = pad_frames(tensors["features"], encoder.min_frames)  # [B, 1, M, T]
        return encoder.dropout(encoder.features(features)), None  # [B, C, F', T']
    if isinstance(encoder, AudioCNNEncoder):
        return encoder.dropout(encoder.features(tensors["features"])), None  # [B, C, F', T']
    out = encoder(**tensors)
    grid = out.sequence.transpose(1, 2).unsqueeze(2)  # [B, D, 1, T]
    mask = out.mask.bool().unsqueeze(1)  # [B, 1, T]
    return grid, None if bool(mask.all()) else mask


class VqaModel(nn.Module):
    """inputs {modality: {key: tensor}} -> answer logits [B, A]."""

    def __init__(
        self, context: str, question: str, encoders: Mapping[str, nn.Module], head: VqaHead
    ) -> None:
        super().__init__()
        self.context, self.question = context, question
        self.encoders = nn.ModuleDict(encoders)  # saved folders and init_from look here
        self.head = head

    def encode(
        self, inputs: Mapping[str, Mapping[str, Tensor]]
    ) -> tuple[Tensor, Tensor | None, EncoderOutput]:
        """The context's map (B, C, H, W), its mask (or None) and the question's states."""
        grid, grid_mask = self.context_map(inputs[self.context])
        words: EncoderOutput = self.encoders[self.question](**inputs[self.question])
        return grid, grid_mask, words

    def context_map(self, tensors: Mapping[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """`context_map` over the distinct contexts of the batch, indexed back to its rows."""
        encoder = self.encoders[self.context]
        exporting = torch.jit.is_tracing() or torch.compiler.is_exporting()  # no data branches
        found = None if exporting else distinct_rows(tensors)
        if found is None:
            return context_map(encoder, tensors)
        first, inverse = found  # [U], [B]
        grid, mask = context_map(encoder, {key: t[first] for key, t in tensors.items()})
        return grid[inverse], None if mask is None else mask[inverse]  # [B, C, H, W], [B, H, W]

    def forward(self, inputs: Mapping[str, Mapping[str, Tensor]]) -> Tensor:
        grid, grid_mask, words = self.encode(inputs)
        logits: Tensor = self.head(
            grid, grid_mask, words.sequence, words.mask.bool(), words.pooled
        )  # [B, A]
        return logits


def head_options(head: type[VqaHead], raw: Mapping[str, Any]) -> VqaHeadOptions:
    """`vqa.head_options` validated by the head's own `Options`; a ConfigError names each
    bad key as `vqa.head_options.<key>` (with the closest valid key for a typo)."""
    try:
        return head.Options.model_validate(dict(raw))
    except ValidationError as exc:
        valid = list(head.Options.model_fields)
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
                hint = f" Did you mean `{close[0]}`?" if close else ""
                lines.append(f"  - unknown key `vqa.head_options.{key}`.{hint} "
                             f"Valid keys here: {', '.join(sorted(valid))}.")  # fmt: skip
            else:
                lines.append(f"  - `vqa.head_options.{key}`: {err['msg']} (got {err['input']!r})")
        message = "\n".join([f"{len(lines)} problem(s) in `vqa.head_options`", *lines])
        raise ConfigError(message) from None


def resolve_head(name: str) -> type[VqaHead]:
    """The head class of `vqa.head`; a ConfigError naming the closest head otherwise."""
    if name not in VQA_HEADS:
        close = difflib.get_close_matches(name, list(VQA_HEADS), n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise ConfigError(f"`vqa.head`: `{name}` is not one of {', '.join(VQA_HEADS)}.{hint}")
    try:
        return vqa_head_class(name)
    except ImportError as exc:
        raise ConfigError(f"`vqa.head: {name}` is not available in this Plait: {exc}") from None


def build_vqa_model(
    config: PlaitConfig,
    processors: Mapping[str, Any],
    labels: LabelSpace | None,
    *,
    load_weights: bool = True,
) -> VqaModel:
    """Both encoders and the configured head over the answer vocabulary (`labels`)."""
    assert config.vqa is not None
    if labels is None:
        raise ConfigError("a `vqa:` run needs its answers: set `data.label` to the answer column")
    context, question = config.vqa_pair
    generative = config.vqa.answer == "generate"
    head_class = GenerativeAnswerHead if generative else resolve_head(config.vqa.head)
    options = head_options(head_class, config.vqa.head_options)
    encoders = {
        name: build_encoder(
            config.modalities[name],
            vocab_size=getattr(processors[name], "vocab_size", None),
            load_weights=load_weights,
        )
        for name in (context, question)
    }
    channels = int(getattr(encoders[context], "output_dim"))  # noqa: B009
    width = int(getattr(encoders[question], "output_dim"))  # noqa: B009
    head: VqaHead
    if generative:  # the decoder's words are those of the answers (labels.json)
        assert isinstance(options, GenerativeOptions)
        head = GenerativeAnswerHead(
            channels, width, labels.num_outputs, options, answers=labels.names
        )
    else:
        head = head_class(channels, width, labels.num_outputs, options)
    return VqaModel(context, question, encoders, head)
