"""Captioning: an image or a sound in, a sentence out (`captioning:` block).

The model (`captioning_model.py`) is trained by teacher-forced token cross-entropy,
padding never scored, optional label smoothing. Each validation epoch also decodes the
validation split greedily and logs BLEU-4 and CIDEr-D (`valid/bleu_4`, `valid/cider_d`;
monitor one of them to keep the checkpoint that captions best). Those references are the
processed captions (lower-cased, cut to `max_length` tokens, unknown words as `<unk>`), a
cheap proxy; the test metrics after training score the raw captions
(`CaptioningPredictor.evaluate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plait.config import PlaitConfig
from plait.data import LabelSpace, PreparedData
from plait.data.batch import Batch
from plait.evaluation.caption_metrics import caption_metrics
from plait.heads.decoding import DecodingOptions
from plait.tasks.base import Task, TaskStep
from plait.tasks.captioning_model import (
    IGNORE,
    CaptioningModel,
    build_captioning_model,
    caption_text,
)
from plait.tasks.captioning_predictor import CaptioningPredictor


class CaptioningStep(TaskStep):
    """Logs `train/loss`, `valid/loss` and (with `valid_captions`) `valid/bleu_4` and
    `valid/cider_d` of greedy captions over the whole validation split."""

    loss_on_progress_bar = True

    def __init__(
        self,
        source: str,
        caption: str,
        processor: Any,
        label_smoothing: float = 0.0,
        valid_options: DecodingOptions | None = None,
    ) -> None:
        super().__init__()
        self.source, self.caption = source, caption
        self.processor = processor
        self.label_smoothing = label_smoothing
        self.valid_options = valid_options
        self._generated: dict[str, str] = {}
        self._references: dict[str, list[str]] = {}

    def targets(self, model: CaptioningModel, batch: Batch) -> Tensor:
        """[B, L] caption targets; rows missing the source or the caption are all IGNORE."""
        text = batch.inputs[self.caption]
        keep = batch.presence[self.source].bool() & batch.presence[self.caption].bool()  # [B]
        return model.tokens.targets(text["input_ids"], text["attention_mask"], keep.cpu())

    def loss(self, model: CaptioningModel, batch: Batch, smoothing: float) -> Tensor:
        targets = self.targets(model, batch)  # [B, L]
        logits = model(batch.inputs, targets)  # [B, L, V]
        if not bool((targets != IGNORE).any()):
            return logits.sum() * 0.0  # no captioned row here: no gradient, no NaN
        return F.cross_entropy(
            logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE,
            label_smoothing=smoothing,
        )  # fmt: skip

    def terms(self, model: nn.Module, batch: Batch, outputs: Tensor | None) -> dict[str, Tensor]:
        assert isinstance(model, CaptioningModel)
        return {"loss": self.loss(model, batch, self.label_smoothing)}

    def validate(self, model: nn.Module, batch: Batch, outputs: Tensor | None) -> dict[str, Tensor]:
        assert isinstance(model, CaptioningModel)
        loss = self.loss(model, batch, self.label_smoothing)
        if self.valid_options is not None:
            targets = self.targets(model, batch)
            generated = model.generate(batch.inputs, self.valid_options)
            for key, ids, target in zip(batch.ids, generated, targets.tolist(), strict=True):
                reference = caption_text(self.processor, model.tokens, target)
                if reference:  # rows without a caption or a source are not scored
                    self._generated[key] = caption_text(self.processor, model.tokens, ids)
                    self._references[key] = [reference]
        return {"loss": loss}

    def epoch_metrics(self) -> dict[str, Tensor]:
        generated, references = self._generated, self._references
        self._generated, self._references = {}, {}
        if not generated:
            return {}
        scores = caption_metrics(generated, references, meteor=False).corpus
        return {name: torch.tensor(scores[name]) for name in ("bleu_4", "cider_d")}


class CaptioningTask(Task):
    name = "captioning"
    predictor = CaptioningPredictor

    def build(
        self,
        config: PlaitConfig,
        processors: Mapping[str, Any],
        labels: LabelSpace | None,
        *,
        load_weights: bool = True,
    ) -> CaptioningModel:
        return build_captioning_model(config, processors, load_weights=load_weights)

    def step(self, config: PlaitConfig, data: PreparedData) -> CaptioningStep:
        assert config.captioning is not None
        settings = config.captioning
        source, caption = config.captioning_pair
        options = None
        if settings.valid_captions:
            options = DecodingOptions(max_length=settings.max_length)  # greedy: cheap
        return CaptioningStep(
            source, caption, data.processors[caption], settings.label_smoothing, options
        )
