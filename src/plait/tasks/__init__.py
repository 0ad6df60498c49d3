"""Tasks: what a model is for, one module per task and one explicit table.

    TASKS = {"classification": ..., "multilabel": ..., "regression": ..., "alignment": ...,
             "captioning": ..., "vqa": ...}

Each row builds its model from the config, trains it one batch at a time (its step),
computes and reports its metrics and returns its predictor (see `plait.tasks.base`).
A config's task is chosen once, by `task_of`; a saved folder records its task, and
`load` dispatches on it. A new task is one module plus one row here.
"""

from __future__ import annotations

from pathlib import Path

from plait.config import PlaitConfig
from plait.errors import PlaitError
from plait.model_folder import raw_config, read_task
from plait.tasks.alignment import AlignmentTask
from plait.tasks.base import Task, TaskStep
from plait.tasks.captioning import CaptioningTask
from plait.tasks.classification import ClassificationTask
from plait.tasks.multilabel import MultilabelTask
from plait.tasks.predictor import BasePredictor
from plait.tasks.regression import RegressionTask
from plait.tasks.vqa import VqaTask

TASKS: dict[str, Task] = {
    "classification": ClassificationTask(),
    "multilabel": MultilabelTask(),
    "regression": RegressionTask(),
    "alignment": AlignmentTask(),
    "captioning": CaptioningTask(),
    "vqa": VqaTask(),
}


def task_name(
    alignment: object, head_task: str | None, captioning: object = None, vqa: object = None
) -> str:
    """The task a config describes: `alignment` when it has an `alignment:` block,
    `captioning` with a `captioning:` block, `vqa` with a `vqa:` block, else its head's
    task (the rule for folders that record no task)."""
    if vqa is not None:
        return "vqa"
    if captioning is not None:
        return "captioning"
    return "alignment" if alignment is not None else head_task or "classification"


def task_of(config: PlaitConfig) -> Task:
    """The row of TASKS a config trains."""
    return TASKS[task_name(config.alignment, config.head.task, config.captioning, config.vqa)]


def task_of_folder(path: str | Path) -> Task:
    """The task a saved folder records; a folder saved before tasks were recorded is
    read by its config (an `alignment:` block makes it an aligned model)."""
    name = read_task(path)
    if name is None:
        raw = raw_config(path)
        head = raw.get("head") if isinstance(raw.get("head"), dict) else {}
        blocks = (raw.get("alignment"), head.get("task"), raw.get("captioning"), raw.get("vqa"))  # type: ignore[union-attr]
        name = task_name(*blocks)
    if name not in TASKS:
        raise PlaitError(
            f"{path} holds a `{name}` model, which this Plait does not know "
            f"(it knows {', '.join(TASKS)}); upgrade Plait to load it"
        )
    return TASKS[name]


def load(path: str | Path, device: str = "cpu") -> BasePredictor:
    """Load a saved model folder: `plait.load("runs/demo/model").predict(df)`.

    The folder's task picks the predictor: an aligned model loads as an
    `AlignedPredictor` (embed, similarity, zero-shot), a supervised one as a `Predictor`.
    A missing, half-saved or corrupt folder raises one `PlaitError` naming the file
    (checks in `plait.model_folder`).
    """
    return task_of_folder(path).predictor.load(path, device=device)


__all__ = ["TASKS", "BasePredictor", "Task", "TaskStep", "load", "task_of", "task_of_folder"]
