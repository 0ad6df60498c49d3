"""The training step of a generative answerer (`vqa.answer: generate`).

Training runs the decoder teacher-forced on each answer's words (the captioning loss);
validation also scores every known answer by its likelihood, so `valid/accuracy` means
what it means for a classifier and can be monitored the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from plait.data.batch import Batch
from plait.heads.vqa.generative import GenerativeAnswerHead
from plait.tasks.base import TaskStep
from plait.tasks.vqa_model import VqaModel


class VqaGenerateStep(TaskStep):
    """Token cross-entropy of the answer words; `valid/accuracy` of the likeliest answer."""

    loss_on_progress_bar = True

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def loss(self, model: VqaModel, batch: Batch) -> Tensor:
        assert isinstance(model.head, GenerativeAnswerHead) and batch.labels is not None
        grid, grid_mask, words = model.encode(batch.inputs)
        return model.head.token_loss(
            grid, grid_mask, words.sequence, words.mask.bool(), batch.labels,
            self.label_smoothing,
        )  # fmt: skip

    def terms(self, model: nn.Module, batch: Batch, outputs: Tensor | None) -> dict[str, Tensor]:
        assert isinstance(model, VqaModel)
        return {"loss": self.loss(model, batch)}

    def validate(self, model: nn.Module, batch: Batch, outputs: Tensor | None) -> dict[str, Tensor]:
        assert isinstance(model, VqaModel) and batch.labels is not None
        scores = model(batch.inputs)  # (B, A) log-likelihood of each known answer
        accuracy = (scores.argmax(-1) == batch.labels).float().mean()
        return {"loss": self.loss(model, batch), "accuracy": accuracy}


@torch.inference_mode()
def free_answers(model: VqaModel, batches: Iterable[Batch], device: torch.device) -> list[str]:
    """What the decoder writes for each row, greedily and unconstrained (it may name an
    answer that is not in the vocabulary)."""
    assert isinstance(model.head, GenerativeAnswerHead)
    written: list[str] = []
    for batch in batches:
        grid, grid_mask, words = model.encode(batch.to(device).inputs)
        written += model.head.generate(grid, grid_mask, words.sequence, words.mask.bool())
    return written
