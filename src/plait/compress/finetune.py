"""A short fine-tune of a pruned model through Plait's own training path.

`plait.training.fit` builds the model through the task it is given; here that task hands
back the pruned model instead of a fresh one (`_PrunedModelTask`), so the fine-tune is an
ordinary run: Lightning, the config's optimiser and schedule, checkpoints, the best
epoch kept. Only the epochs (and, when given, the training table) change.

The run re-reads the training table and refits the processors; the pruned model only
fits the processors it was trained with, so a table that gives another vocabulary or
label space is refused before the first step.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from plait.compress.rows import processor_state
from plait.config import PlaitConfig
from plait.data import LabelSpace, PreparedData
from plait.errors import PlaitError
from plait.tasks import BasePredictor, Task, task_of


class _PrunedModelTask:
    """A `TrainingTask` whose `build` returns the pruned model (after checking that the
    freshly fitted processors and labels are the ones the model was trained with)."""

    def __init__(self, task: Task, predictor: BasePredictor, source: str) -> None:
        self.task = task
        self.predictor = predictor
        self.source = source

    @property
    def name(self) -> str:
        return self.task.name

    def build(
        self,
        config: PlaitConfig,
        processors: Mapping[str, Any],
        labels: LabelSpace | None,
        *,
        load_weights: bool = True,
    ) -> nn.Module:
        for name, processor in processors.items():
            if processor_state(processor) != processor_state(self.predictor.processors[name]):
                raise PlaitError(
                    f"fine-tuning on {self.source}: the `{name}` processor fitted on this table "
                    "differs from the model's (another vocabulary or settings); fine-tune on "
                    "the table the model was trained on (--data), or pass --finetune-epochs 0"
                )
        saved = self.predictor.labels
        if (labels is None) != (saved is None) or (
            labels is not None and saved is not None and labels.names != saved.names
        ):
            raise PlaitError(
                f"fine-tuning on {self.source}: its labels differ from the model's "
                f"({_names(labels)} vs {_names(saved)}); fine-tune on the model's training table"
            )
        return self.predictor.model.train()

    def step(self, config: PlaitConfig, data: PreparedData) -> Any:
        return self.task.step(config, data)

    def baseline(self, model: nn.Module, config: PlaitConfig, data: PreparedData) -> None:
        return None


def _names(labels: LabelSpace | None) -> str:
    return "none" if labels is None else ", ".join(map(str, labels.names[:5]))


def finetune_config(config: PlaitConfig, epochs: int, data: str | Path | None) -> PlaitConfig:
    """The model's config with the fine-tune's epochs (and training table, when given)."""
    training = config.training.model_copy(
        update={"epochs": epochs, "time_limit": None, "progress": False, "tensorboard": False}
    )
    update: dict[str, Any] = {"training": training}
    if data is not None:
        update["data"] = config.data.model_copy(update={"train": str(data)})
    return config.model_copy(update=update)


def finetune(
    predictor: BasePredictor, epochs: int, data: str | Path | None, run_dir: Path
) -> nn.Module:
    """Train `predictor.model` (pruned) `epochs` more epochs on its training data; returns
    the model with the best epoch's weights (on the CPU). The run's files go to
    `run_dir` (checkpoints, logs)."""
    from plait.training import fit

    config = finetune_config(predictor.config, epochs, data)
    source = str(config.data.train)
    if not Path(source).exists():
        raise PlaitError(
            f"the model's training table {source} is not there to fine-tune on: pass "
            "--data TABLE (the same columns and labels), or --finetune-epochs 0"
        )
    trained = fit(config, _PrunedModelTask(task_of(config), predictor, source), run_dir=run_dir)
    model: nn.Module = trained.model
    return model.eval()
