"""What the supervised tasks (classification, multilabel, regression) share: a
`MultimodalModel` (encoders + fusion + head), a loss of the head's outputs against the
labels, and the `Predictor`. Each task is its own row (`classification.py`, ...), adding
only what it logs during validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from plait.build import build_model
from plait.config import PlaitConfig
from plait.data import LabelSpace, PreparedData
from plait.data.batch import Batch
from plait.errors import PlaitError
from plait.model import MultimodalModel
from plait.objectives import TaskLoss
from plait.tasks.base import Task, TaskStep
from plait.tasks.supervised_predictor import Predictor


class SupervisedStep(TaskStep):
    """model(batch) -> outputs [B, K]; the task loss against `batch.labels`."""

    def __init__(self, loss: TaskLoss) -> None:
        super().__init__()
        self.loss = loss

    def outputs(self, model: nn.Module, batch: Batch) -> Tensor:
        return model(batch.inputs, batch.presence)  # [B, K]

    def terms(self, model: nn.Module, batch: Batch, outputs: Tensor | None) -> dict[str, Tensor]:
        assert outputs is not None
        return {"loss": self.loss(outputs, batch.labels)}

    def validate(self, model: nn.Module, batch: Batch, outputs: Tensor | None) -> dict[str, Tensor]:
        assert outputs is not None and batch.labels is not None
        return {"loss": self.loss(outputs, batch.labels), **self.metrics(outputs, batch.labels)}

    def metrics(self, outputs: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """A validation metric per batch beside the loss (per task)."""
        return {}


class SupervisedTask(Task):
    """A head over fused modalities, trained against labels."""

    step_class: type[SupervisedStep] = SupervisedStep
    predictor = Predictor

    def build(
        self,
        config: PlaitConfig,
        processors: Mapping[str, Any],
        labels: LabelSpace | None,
        *,
        load_weights: bool = True,
    ) -> MultimodalModel:
        if labels is None:
            raise PlaitError("a supervised run needs `data.label`")
        return build_model(config, processors, labels.num_outputs, load_weights=load_weights)

    def step(self, config: PlaitConfig, data: PreparedData) -> SupervisedStep:
        return self.step_class(task_loss(config, data))


def task_loss(config: PlaitConfig, data: PreparedData) -> TaskLoss:
    """`class_weights: balanced` -> class weights (classification) or positive-label
    weights (multilabel), counted on the rows actually trained on."""
    weights = None
    if (
        config.head.class_weights == "balanced"
        and config.head.task != "regression"
        and data.labels is not None
    ):
        weights = torch.as_tensor(data.labels.class_weights(data.train), dtype=torch.float32)
    return TaskLoss(config.head, weights)
