"""Visual (or audio) question answering: a picture or a sound and a question in, an answer
out (`vqa:` block).

The answers of the training split (`data.label`) are the vocabulary, saved with the model
in labels.json; the model (`vqa_model.py`) scores each and is trained by cross-entropy
(with `head.label_smoothing`). Each validation batch logs `valid/loss` and
`valid/accuracy`; the metrics after training (`VqaPredictor.evaluate`) add the accuracy
per question type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from plait.config import PlaitConfig
from plait.data import LabelSpace, PreparedData
from plait.data.batch import Batch
from plait.data.labels import UNKNOWN_ANSWER
from plait.tasks.base import Task, TaskStep
from plait.tasks.vqa_generate import VqaGenerateStep
from plait.tasks.vqa_model import VqaModel, build_vqa_model
from plait.tasks.vqa_predictor import VqaPredictor


class VqaStep(TaskStep):
    """model(batch) -> answer logits [B, A]; cross-entropy against `batch.labels`."""

    loss_on_progress_bar = True

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def outputs(self, model: nn.Module, batch: Batch) -> Tensor:
        assert isinstance(model, VqaModel)
        return model(batch.inputs)  # [B, A]

    def loss(self, outputs: Tensor, labels: Tensor | None) -> Tensor:
        """Cross-entropy over the rows whose answer is in the vocabulary (a validation
        row's answer may be one training never saw: `UNKNOWN_ANSWER`, not scored)."""
        assert labels is not None
        if not bool((labels != UNKNOWN_ANSWER).any()):
            return outputs.sum() * 0.0  # no known answer in this batch: no gradient, no NaN
        return F.cross_entropy(
            outputs.float(), labels, ignore_index=UNKNOWN_ANSWER,
            label_smoothing=self.label_smoothing,
        )  # fmt: skip

    def terms(self, model: nn.Module, batch: Batch, outputs: Tensor | None) -> dict[str, Tensor]:
        assert outputs is not None
        return {"loss": self.loss(outputs, batch.labels)}

    def validate(self, model: nn.Module, batch: Batch, outputs: Tensor | None) -> dict[str, Tensor]:
        assert outputs is not None and batch.labels is not None
        accuracy = (outputs.argmax(-1) == batch.labels).float().mean()  # unknown: wrong
        return {"loss": self.loss(outputs, batch.labels), "accuracy": accuracy}


class VqaTask(Task):
    name = "vqa"
    predictor = VqaPredictor

    def build(
        self,
        config: PlaitConfig,
        processors: Mapping[str, Any],
        labels: LabelSpace | None,
        *,
        load_weights: bool = True,
    ) -> VqaModel:
        return build_vqa_model(config, processors, labels, load_weights=load_weights)

    def step(self, config: PlaitConfig, data: PreparedData) -> TaskStep:
        if config.vqa is not None and config.vqa.answer == "generate":
            return VqaGenerateStep(config.head.label_smoothing)
        return VqaStep(config.head.label_smoothing)
