"""What training needs from a task (a row of `plait.tasks.TASKS`), as protocols.

The caller (`plait.api.train`) picks the task once and hands it to `fit`; training only
calls these methods, so it never asks which task it holds and never imports predictors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from torch import Tensor, nn

from plait.config import PlaitConfig
from plait.data import LabelSpace, PreparedData
from plait.data.batch import Batch


class TrainingStep(Protocol):
    """A task's training and validation step (an `nn.Module` holding the loss settings)."""

    @property
    def loss_on_progress_bar(self) -> bool:
        """Show `train/loss` on the progress bar."""
        ...

    def outputs(self, model: nn.Module, batch: Batch) -> Tensor | None: ...

    def terms(
        self, model: nn.Module, batch: Batch, outputs: Tensor | None
    ) -> dict[str, Tensor]: ...

    def validate(
        self, model: nn.Module, batch: Batch, outputs: Tensor | None
    ) -> dict[str, Tensor]: ...

    def epoch_metrics(self) -> dict[str, Tensor]: ...

    def parameter_groups(self, model: nn.Module) -> list[dict[str, Any]]: ...


class TrainingTask(Protocol):
    """The parts of a task that training calls."""

    @property
    def name(self) -> str: ...

    def build(
        self,
        config: PlaitConfig,
        processors: Mapping[str, Any],
        labels: LabelSpace | None,
        *,
        load_weights: bool = True,
    ) -> nn.Module: ...

    def step(self, config: PlaitConfig, data: PreparedData) -> TrainingStep: ...

    def baseline(
        self, model: nn.Module, config: PlaitConfig, data: PreparedData
    ) -> dict[str, Any] | None: ...
