"""The Lightning wrapper around an AlignedModel: alignment objectives, validation recall."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from plait.alignment.model import AlignedModel
from plait.config import TrainingConfig
from plait.data.batch import Batch
from plait.objectives.alignment import AlignmentObjective
from plait.objectives.contrastive import positive_pairs
from plait.training.module import TrainingModule


class AlignmentModule(TrainingModule):
    """Logs `train/loss`, one `train/<objective>` per objective, `valid/loss` and
    `valid/R@1`: the share of validation rows (both directions, whole validation split)
    whose nearest partner is a match: identical inputs count as matches and, with
    `relevance: label`, so do rows of the same class (as in the test metrics)."""

    model: AlignedModel

    def __init__(
        self,
        model: AlignedModel,
        objective: AlignmentObjective,
        training: TrainingConfig,
        label_relevance: bool = False,
    ) -> None:
        super().__init__(training)
        self.model = model
        self.objective = objective
        self.label_relevance = label_relevance
        self._valid: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        self._classes: list[Tensor] = []

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        terms = self.objective(self.model, batch.inputs, batch.presence)
        if self.checked_loss(terms["loss"], batch, batch_idx) is None:
            return self.no_effect_loss()
        size = len(batch)
        for name, value in terms.items():
            self.log(
                f"train/{name}", value, on_step=False, on_epoch=True, batch_size=size,
                sync_dist=True, prog_bar=name == "loss",
            )  # fmt: skip
        return terms["loss"]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        terms = self.objective(self.model, batch.inputs, batch.presence)
        self.note_valid_loss(terms["loss"], batch, batch_idx)
        self.log("valid/loss", terms["loss"], prog_bar=True, batch_size=len(batch), sync_dist=True)
        if self.objective.last_pairs is not None:
            self._valid.append(self.objective.last_pairs)
            if self.label_relevance and batch.labels is not None:
                a, b = self.model.pair
                both = batch.presence[a].bool() & batch.presence[b].bool()  # the scored rows
                self._classes.append(batch.labels[both])

    def on_validation_epoch_end(self) -> None:
        if not self._valid:
            return
        za, zb, pa, pb = (torch.cat(parts) for parts in zip(*self._valid, strict=True))
        classes = torch.cat(self._classes) if len(self._classes) == len(self._valid) else None
        self._valid.clear()
        self._classes.clear()
        if len(za) < 2:
            return
        match = positive_pairs(pa, pb)  # [N, N]
        if classes is not None and classes.dim() == 1:
            match = match | (classes.unsqueeze(0) == classes.unsqueeze(1))
        rows = torch.arange(len(za), device=za.device)
        similarity = za @ zb.T  # [N, N]
        hits_ab = match[rows, similarity.argmax(1)].float().mean()
        hits_ba = match[similarity.argmax(0), rows].float().mean()
        recall = 0.5 * (hits_ab + hits_ba)
        self.log("valid/R@1", recall, prog_bar=True, sync_dist=True)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """No weight decay on the temperature, biases and norm gains (as CLIP): decaying
        the logit scale would pull the temperature towards 1."""
        decay: list[nn.Parameter] = []
        keep: list[nn.Parameter] = []
        for param in self.model.parameters():
            if param.requires_grad:
                (decay if param.ndim >= 2 else keep).append(param)
        return [{"params": decay}, {"params": keep, "weight_decay": 0.0}]
