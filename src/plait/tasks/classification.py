"""Classification: one class per row; cross-entropy; accuracy during validation."""

from __future__ import annotations

from torch import Tensor

from plait.tasks.supervised import SupervisedStep, SupervisedTask


class ClassificationStep(SupervisedStep):
    def metrics(self, outputs: Tensor, labels: Tensor) -> dict[str, Tensor]:
        return {"accuracy": (outputs.argmax(1) == labels).float().mean()}  # outputs [B, K]


class ClassificationTask(SupervisedTask):
    name = "classification"
    step_class = ClassificationStep
