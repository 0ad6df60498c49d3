"""What a task is: one row of `plait.tasks.TASKS`.

A task says how its model is built from the config (`build`), how one batch trains it
(`step`: the losses and what is logged), how its metrics are computed and reported
(`predictor.evaluate` and the `report` section of `plait.evaluation.write_report`), and
what its predictor returns (`predictor`). Training, saving and loading go through the
task, so none of them asks which task it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor, nn

from plait.config import PlaitConfig
from plait.data import LabelSpace, PreparedData
from plait.data.batch import Batch
from plait.tasks.predictor import BasePredictor


class TaskStep(nn.Module):
    """One task's training and validation step, as the Lightning module calls it.

    Holds the loss settings (and any per-epoch state); never the model, which the
    Lightning module owns and passes in, so a checkpoint's weights are `model.*` only.
    """

    #: show `train/loss` on the progress bar
    loss_on_progress_bar: ClassVar[bool] = False

    def outputs(self, model: nn.Module, batch: Batch) -> Tensor | None:
        """The model's outputs for `batch` (None when the losses run the model themselves)."""
        return None

    def terms(self, model: nn.Module, batch: Batch, outputs: Tensor | None) -> dict[str, Tensor]:
        """`{"loss": total, "<term>": each logged term}` of one training batch."""
        raise NotImplementedError

    def validate(self, model: nn.Module, batch: Batch, outputs: Tensor | None) -> dict[str, Tensor]:
        """`{"loss": loss, "<metric>": value}` of one validation batch (logged as valid/...)."""
        raise NotImplementedError

    def epoch_metrics(self) -> dict[str, Tensor]:
        """Validation metrics over the whole epoch (logged as valid/...), then reset."""
        return {}

    def parameter_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """The optimiser's parameter groups; one group of every trainable weight here."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]


class Task:
    """One task: build, training step, metrics and report, predictor."""

    name: ClassVar[str]
    predictor: ClassVar[type[BasePredictor]]

    @property
    def report(self) -> str:
        """The report section `plait.evaluation.write_report` renders for this task."""
        return self.name

    def build(
        self,
        config: PlaitConfig,
        processors: Mapping[str, Any],
        labels: LabelSpace | None,
        *,
        load_weights: bool = True,
    ) -> nn.Module:
        """The task's model from the config and the fitted preprocessing."""
        raise NotImplementedError

    def step(self, config: PlaitConfig, data: PreparedData) -> TaskStep:
        """The training step for a run on `data`."""
        raise NotImplementedError

    def predictor_of(
        self,
        model: nn.Module,
        config: PlaitConfig,
        processors: dict[str, Any],
        labels: LabelSpace | None,
        metrics: dict[str, Any] | None = None,
    ) -> BasePredictor:
        """A trained model, ready for use (and saving)."""
        return self.predictor(model, config, processors, labels, metrics)

    def evaluate(self, model: nn.Module, config: PlaitConfig, data: PreparedData) -> dict[str, Any]:
        """Metrics on the test split (valid split when there is no test split)."""
        for split in ("test", "valid"):
            metrics = self.evaluate_split(model, config, data, split)
            if metrics is not None:
                return metrics
        return {"split": None, "note": "no validation or test rows to evaluate on"}

    def evaluate_split(
        self, model: nn.Module, config: PlaitConfig, data: PreparedData, split: str
    ) -> dict[str, Any] | None:
        """Metrics on one split (`valid` or `test`, recorded as `split`); None when the
        run has no rows there."""
        dataset = data.valid if split == "valid" else data.test
        if dataset is None or len(dataset) == 0:
            return None
        predictor = self.predictor_of(model, config, data.processors, data.labels)
        metrics = predictor.evaluate(dataset)
        metrics["split"] = split
        return metrics

    def baseline(
        self, model: nn.Module, config: PlaitConfig, data: PreparedData
    ) -> dict[str, Any] | None:
        """Validation metrics before training, when what the model knows then is worth
        keeping (pretrained towers); None otherwise. Never test metrics: the test split is
        scored once, after training."""
        return None

    def forgetting_warnings(self, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
        """One line per metric that fell during training: `baseline` against the
        validation metrics after training."""
        return []
