"""Loss functions, one file per family; `task_loss` picks the supervised one for a head."""

from __future__ import annotations

from torch import Tensor, nn

from plait.config import HeadConfig
from plait.objectives.supervised import classification_loss, multilabel_loss, regression_loss


class TaskLoss(nn.Module):
    """Module wrapper holding the head's loss settings.

    `class_weights`: per-class weights [K] for classification, positive-label weights [L]
    for multilabel (kept as a non-persistent buffer, so it follows the model's device).
    """

    class_weights: Tensor | None  # registered as a buffer in __init__

    def __init__(self, config: HeadConfig, class_weights: Tensor | None = None) -> None:
        super().__init__()
        self.task = config.task
        self.label_smoothing = config.label_smoothing
        self.kind = config.loss
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        if self.task == "classification":
            return classification_loss(
                outputs,
                targets,
                label_smoothing=self.label_smoothing,
                class_weights=self.class_weights,
            )
        if self.task == "multilabel":
            return multilabel_loss(outputs, targets, pos_weight=self.class_weights)
        return regression_loss(outputs, targets, kind=self.kind)


__all__ = ["TaskLoss", "classification_loss", "multilabel_loss", "regression_loss"]
