"""Alignment: two modalities embedded in one space (CLIP / SigLIP / CLAP style).

Built by `plait.alignment.build` (two towers, projections, optional ITM / MLM heads),
trained with the weighted alignment objectives (`alignment_objective`), validated by
recall@1 over the whole validation split, used through `AlignedPredictor` (embed,
similarity, zero-shot). Pretrained towers are evaluated before training too, so a run
warns when fine-tuning made them forget.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from plait.alignment.build import build_aligned_model, text_tokens
from plait.alignment.model import AlignedModel
from plait.config import PlaitConfig
from plait.data import LabelSpace, PreparedData
from plait.data.batch import Batch
from plait.objectives.contrastive import positive_pairs
from plait.tasks.aligned_predictor import AlignedPredictor
from plait.tasks.alignment_objective import AlignmentObjective
from plait.tasks.base import Task, TaskStep

log = logging.getLogger("plait")


class AlignmentStep(TaskStep):
    """Logs `train/loss`, one `train/<objective>` per objective, `valid/loss` and
    `valid/R@1`: the share of validation rows (both directions, whole validation split)
    whose nearest partner is a match: identical inputs count as matches and, with
    `relevance: label`, so do rows of the same class (as in the test metrics)."""

    loss_on_progress_bar = True

    def __init__(self, objective: AlignmentObjective, label_relevance: bool = False) -> None:
        super().__init__()
        self.objective = objective
        self.label_relevance = label_relevance
        self._valid: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        self._classes: list[Tensor] = []

    def terms(self, model: nn.Module, batch: Batch, outputs: Tensor | None) -> dict[str, Tensor]:
        return self.objective(model, batch.inputs, batch.presence)

    def validate(self, model: nn.Module, batch: Batch, outputs: Tensor | None) -> dict[str, Tensor]:
        assert isinstance(model, AlignedModel)
        terms = self.objective(model, batch.inputs, batch.presence)
        if self.objective.last_pairs is not None:
            self._valid.append(self.objective.last_pairs)
            if self.label_relevance and batch.labels is not None:
                a, b = model.pair
                both = batch.presence[a].bool() & batch.presence[b].bool()  # the scored rows
                self._classes.append(batch.labels[both])
        return {"loss": terms["loss"]}

    def epoch_metrics(self) -> dict[str, Tensor]:
        if not self._valid:
            return {}
        za, zb, pa, pb = (torch.cat(parts) for parts in zip(*self._valid, strict=True))
        classes = torch.cat(self._classes) if len(self._classes) == len(self._valid) else None
        self._valid.clear()
        self._classes.clear()
        if len(za) < 2:
            return {}
        match = positive_pairs(pa, pb)  # [N, N]
        if classes is not None and classes.dim() == 1:
            match = match | (classes.unsqueeze(0) == classes.unsqueeze(1))
        rows = torch.arange(len(za), device=za.device)
        similarity = za @ zb.T  # [N, N]
        hits_ab = match[rows, similarity.argmax(1)].float().mean()
        hits_ba = match[similarity.argmax(0), rows].float().mean()
        return {"R@1": 0.5 * (hits_ab + hits_ba)}

    def parameter_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """No weight decay on the temperature, biases and norm gains (as CLIP): decaying
        the logit scale would pull the temperature towards 1."""
        decay: list[nn.Parameter] = []
        keep: list[nn.Parameter] = []
        for param in model.parameters():
            if param.requires_grad:
                (decay if param.ndim >= 2 else keep).append(param)
        return [{"params": decay}, {"params": keep, "weight_decay": 0.0}]


class AlignmentTask(Task):
    name = "alignment"
    predictor = AlignedPredictor

    def build(
        self,
        config: PlaitConfig,
        processors: Mapping[str, Any],
        labels: LabelSpace | None,
        *,
        load_weights: bool = True,
    ) -> AlignedModel:
        return build_aligned_model(config, processors, load_weights=load_weights)

    def step(self, config: PlaitConfig, data: PreparedData) -> AlignmentStep:
        assert config.alignment is not None
        objective = AlignmentObjective(config.alignment, text_tokens(config, data.processors))
        label_relevance = config.alignment.relevance == "label" and data.labels is not None
        return AlignmentStep(objective, label_relevance)

    def baseline(
        self, model: nn.Module, config: PlaitConfig, data: PreparedData
    ) -> dict[str, Any] | None:
        """Validation retrieval and zero-shot metrics of pretrained towers before
        fine-tuning, so a run can warn when fine-tuning destroys what they knew. None for
        models trained from scratch (their "before" is chance) and for runs without a
        validation split (the test split is scored once, after training, never here)."""
        pretrained = any(
            config.modalities[n].encoder.type == "huggingface" for n in config.aligned_pair
        )
        if not pretrained:
            return None
        metrics = self.evaluate_split(model, config, data, "valid")
        model.train()
        if metrics is None:
            log.info(
                "no validation split: the before/after check of the pretrained towers is "
                "skipped (it compares validation scores; the test split is scored once)"
            )
        return metrics

    def forgetting_warnings(
        self, before: dict[str, Any], after: dict[str, Any], tolerance: float = 0.01
    ) -> list[str]:
        """One line per retrieval recall or zero-shot accuracy that fell during fine-tuning."""
        lines = []
        pairs = [
            (f"{direction} R@{k}", before["retrieval"][direction].get(f"R@{k}"),
             after.get("retrieval", {}).get(direction, {}).get(f"R@{k}"))
            for direction in before.get("retrieval", {})
            for k in (1, 5)
        ]  # fmt: skip
        pairs += [
            (f"zero-shot {name} accuracy", value.get("accuracy"),
             after.get("zeroshot", {}).get(name, {}).get("accuracy"))
            for name, value in before.get("zeroshot", {}).items()
        ]  # fmt: skip
        for label, old, new in pairs:
            if old is not None and new is not None and new < old - tolerance:
                lines.append(
                    f"fine-tuning lowered {label} from {old:.3f} to {new:.3f}: the pretrained "
                    "model lost knowledge (try a lower lr, fewer epochs or a frozen tower)"
                )
        return lines
