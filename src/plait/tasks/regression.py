"""Regression: one or more numeric targets; MSE or Huber; mean absolute error (of the
normalised targets) during validation."""

from __future__ import annotations

from torch import Tensor

from plait.tasks.supervised import SupervisedStep, SupervisedTask


class RegressionStep(SupervisedStep):
    def metrics(self, outputs: Tensor, labels: Tensor) -> dict[str, Tensor]:
        return {"mae": (outputs - labels).abs().mean()}  # outputs, labels [B, R]


class RegressionTask(SupervisedTask):
    name = "regression"
    step_class = RegressionStep
