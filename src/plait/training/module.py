"""The one Lightning module: a plain model trained by its task's step, with the
optimiser, the schedule, non-finite loss handling and exact resumption."""

from __future__ import annotations

import logging
import random
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from plait.config import TrainingConfig
from plait.data.batch import Batch
from plait.training.frozen import FrozenTower, drop_frozen, frozen_towers, restore_frozen
from plait.training.nonfinite import (
    NonFiniteError,
    any_process,
    describe_rows,
    is_finite,
    training_step_name,
)
from plait.training.task import TrainingStep

log = logging.getLogger("plait")


class TrainingModule(pl.LightningModule):
    """The task-independent half of the Lightning module: the optimiser and schedule,
    per-epoch augmentation seeds, batch transfer, non-finite losses and exact resumption.

    The random state (torch, CUDA and Python) is saved in every checkpoint and restored
    on resume, so an interrupted run continues exactly as an uninterrupted one would.
    `PlaitModule` sets `self.model` and delegates the steps to the task.
    """

    model: nn.Module

    def __init__(self, training: TrainingConfig) -> None:
        super().__init__()
        self.training_config = training
        self.nonfinite_skipped = 0  # training batches skipped for a non-finite loss
        self._frozen_towers: list[FrozenTower] | None = None  # hashed at the first save
        self.nonfinite_valid: str | None = None  # first validation batch with one, this epoch
        self._finite_in_window = False  # a batch of this accumulation window had a finite loss

    # ------------------------------------------------------------ non-finite losses
    def checked_loss(
        self, loss: Tensor, batch: Batch, batch_idx: int, outputs: Tensor | None = None
    ) -> Tensor | None:
        """`loss` when it is finite on every process; otherwise stop the run with the step
        and rows named (NonFiniteError) or, with `on_nonfinite: skip`, count the batch and
        return None: the caller then returns `no_effect_loss()` and logs nothing."""
        local = is_finite(loss)
        if not any_process(not local, self):
            self._finite_in_window = True
            return loss
        step = training_step_name(self, batch_idx)
        rows = "its rows are on another DDP process" if local else describe_rows(batch, outputs)
        value = "not finite" if local else str(loss.item())
        broken = self._poisoned_buffers()
        skip = self.training_config.on_nonfinite == "skip"
        if skip and not any_process(bool(broken), self):  # the same answer on every process
            self.nonfinite_skipped += 1
            log.warning(
                "skipped a training batch with a non-finite loss at %s; %s "
                "(training.on_nonfinite: skip)",
                step,
                rows,
            )
            return None
        poisoned = f"; it made {broken[0]} non-finite, so skipping cannot help" if broken else ""
        hint = "" if skip else ", or set `training.on_nonfinite: skip` to skip such batches"
        raise NonFiniteError(
            f"the training loss is {value} at {step}; {rows}{poisoned}. The run stopped "
            "before a broken model could be saved: check those rows' inputs and labels or "
            f"lower `training.lr`{hint}"
        )

    def no_effect_loss(self) -> Tensor:
        """The loss of a skipped batch: exactly zero, touching every trainable weight.

        Lightning refuses a `None` step under DDP, and every process must join the same
        gradient all-reduce; so a skipped batch still has a backward pass, adding exact
        zeros to the gradients, and `on_before_optimizer_step` drops the step when no
        batch of the accumulation window had a finite loss.
        """
        terms = [p.flatten()[0] * 0.0 for p in self.parameters() if p.requires_grad and p.numel()]
        return torch.stack(terms).sum()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self._finite_in_window:  # every batch since the last step was skipped
            for group in optimizer.param_groups:
                for param in group["params"]:
                    param.grad = None  # the optimizer leaves weights without a gradient alone
        self._finite_in_window = False

    def _poisoned_buffers(self) -> list[str]:
        """Buffers (batch-norm running statistics) the skipped forward pass already made
        non-finite: skipping the optimizer step cannot undo that, so the run must stop."""
        return [
            name
            for name, buffer in self.named_buffers()
            if buffer.is_floating_point() and not is_finite(buffer)
        ]

    def note_valid_loss(
        self, loss: Tensor, batch: Batch, batch_idx: int, outputs: Tensor | None = None
    ) -> None:
        """Remember the first validation batch of this epoch with a non-finite loss, for
        the message of `NonFiniteMetricStop`."""
        if self.nonfinite_valid is None and not is_finite(loss):
            self.nonfinite_valid = f"{batch_idx + 1}: {describe_rows(batch, outputs)}"

    def on_validation_epoch_start(self) -> None:
        self.nonfinite_valid = None

    def on_train_epoch_start(self) -> None:
        # augmentation randomness is seeded from (seed, epoch, row): tell the dataset
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        if dataset is not None and hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int):
        return batch.to(device) if isinstance(batch, Batch) else batch

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        cfg = self.training_config
        params = self.parameter_groups()
        if cfg.optimizer == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        else:
            optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = warmup_schedule(optimizer, total, int(cfg.warmup_ratio * total), cfg.scheduler)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The optimiser's parameter groups; one group of every trainable weight here."""
        return [{"params": [p for p in self.model.parameters() if p.requires_grad]}]

    # ------------------------------------------------------------ exact resumption
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["plait_rng"] = rng_state()
        checkpoint["plait_nonfinite_skipped"] = self.nonfinite_skipped
        # frozen hub towers by reference: they never change, so hash them once
        if self._frozen_towers is None:
            self._frozen_towers = frozen_towers(self)
        drop_frozen(checkpoint, self._frozen_towers)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        restore_frozen(checkpoint, self)  # before Lightning loads the state dict
        # applied in on_train_start, after Lightning's own start-up work has drawn from
        # the global generator (sanity validation), exactly where the saved run stood
        self._restored_rng = checkpoint.get("plait_rng")
        self.nonfinite_skipped = int(checkpoint.get("plait_nonfinite_skipped", 0))

    def on_train_start(self) -> None:
        state = getattr(self, "_restored_rng", None)
        if state:
            restore_rng_state(state)
            self._restored_rng = None


def rng_state() -> dict[str, Any]:
    """Every random generator a training step draws from: torch's CPU generator, each
    CUDA device's (when CUDA is in use: dropout and augmentation on the GPU draw from
    them) and Python's. Plain tensors and lists, so `weights_only` loading reads it."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what `rng_state` saved. CUDA states are restored when this run uses CUDA
    with at least as many devices (a checkpoint from a CPU run has none)."""
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(_to_tuples(state["python"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() >= len(cuda):
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


class PlaitModule(TrainingModule):
    """Trains a plain model with its task's step (`plait.tasks`): logs `train/loss` and
    the task's other terms, `valid/loss` and the task's validation metrics."""

    def __init__(self, model: nn.Module, step: TrainingStep, training: TrainingConfig) -> None:
        super().__init__(training)
        self.model = model
        self.task_step = step  # an nn.Module (loss settings, per-epoch state), no weights

    def forward(self, batch: Batch) -> Tensor | None:
        return self.task_step.outputs(self.model, batch)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        outputs = self(batch)  # [B, K] for a supervised task; None when the step runs the model
        terms = self.task_step.terms(self.model, batch, outputs)
        checked = self.checked_loss(terms["loss"], batch, batch_idx, outputs)
        if checked is None:
            return self.no_effect_loss()
        bar = self.task_step.loss_on_progress_bar
        for name, value in terms.items():
            self.log(
                f"train/{name}", value, on_step=False, on_epoch=True, batch_size=len(batch),
                sync_dist=True, prog_bar=bar and name == "loss",
            )  # fmt: skip
        return checked

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        outputs = self(batch)
        values = self.task_step.validate(self.model, batch, outputs)
        self.note_valid_loss(values["loss"], batch, batch_idx, outputs)
        for name, value in values.items():
            self.log(f"valid/{name}", value, prog_bar=True, batch_size=len(batch), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        for name, value in self.task_step.epoch_metrics().items():
            self.log(f"valid/{name}", value, prog_bar=True, sync_dist=True)

    def parameter_groups(self) -> list[dict[str, Any]]:
        return self.task_step.parameter_groups(self.model)


def warmup_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, kind: str
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine / linear decay or constant: the schedules of
    `transformers` (`get_*_schedule_with_warmup`), stepped once per optimiser step."""
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    if kind == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup_steps)
    if kind == "linear":
        return get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    return get_cosine_schedule_with_warmup(optimizer, warmup_steps, total_steps)


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple | list) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value
