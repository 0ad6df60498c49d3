"""Non-finite losses and metrics: stop the run (or skip the batch) with the step and rows named.

One NaN or infinite loss poisons every weight that its optimizer step touches, and a NaN
validation metric freezes the choice of the best checkpoint at whatever came before it.
Either way the saved model would be broken while the run looked normal. So a non-finite
training loss stops the run with a `NonFiniteError` naming the epoch, the batch and the
rows it can blame (`training.on_nonfinite: skip` drops that batch instead, without an
optimizer step, and counts it), and a non-finite validation metric always stops it.

Under DDP every process must take the same decision, or the ones that carry on wait
forever for the others in the next gradient all-reduce: `any_process` sums the flag over
all processes first.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor

from plait.data.batch import Batch
from plait.errors import PlaitError

#: ids shown in a message before "and N more"
SHOWN_IDS = 10


class NonFiniteError(PlaitError):
    """A loss or metric became NaN or infinite; the run stopped before saving a model."""


def any_process(flag: bool, module: pl.LightningModule) -> bool:
    """True when `flag` is true on any training process (all of them get the same answer)."""
    trainer = getattr(module, "_trainer", None)
    if trainer is None or trainer.world_size <= 1:
        return flag
    total = trainer.strategy.reduce(
        torch.tensor(float(flag), device=module.device), reduce_op="sum"
    )
    return bool(total.item() > 0)


def is_finite(value: Tensor) -> bool:
    return bool(torch.isfinite(value.detach()).all())


def blamed_rows(batch: Batch, outputs: Tensor | None = None) -> tuple[str, list[str]]:
    """(why, ids): the rows of `batch` whose inputs hold NaN / Inf, else those whose
    outputs do, else every row of the batch (the fault is not in one row)."""
    rows = torch.zeros(len(batch), dtype=torch.bool)
    for tensors in batch.inputs.values():
        for value in tensors.values():
            if value.is_floating_point() and value.dim() >= 1 and len(value) == len(batch):
                rows |= ~torch.isfinite(value.detach()).flatten(1).all(1).cpu()
    if rows.any():
        return "inputs hold NaN or infinite values", _ids(batch, rows)
    if outputs is not None and outputs.dim() >= 1 and len(outputs) == len(batch):
        rows = ~torch.isfinite(outputs.detach().float()).flatten(1).all(1).cpu()
        if rows.any() and not rows.all():
            return "model outputs are NaN or infinite", _ids(batch, rows)
    return "rows in the batch", list(batch.ids)


def describe_rows(batch: Batch, outputs: Tensor | None = None) -> str:
    """'rows whose inputs hold NaN or infinite values (ids: a, b)' for an error message."""
    why, ids = blamed_rows(batch, outputs)
    shown = ", ".join(ids[:SHOWN_IDS])
    more = f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
    return f"{why} (ids: {shown}{more})" if ids else why


def _ids(batch: Batch, rows: Tensor) -> list[str]:
    return [batch.ids[i] for i in rows.nonzero().flatten().tolist()]


def training_step_name(module: pl.LightningModule, batch_idx: int) -> str:
    """'epoch 2 of 10, training batch 3 of 4 (optimizer step 7)', counted from 1."""
    trainer = module.trainer
    batches = trainer.num_training_batches
    of_batches = f" of {batches}" if isinstance(batches, int) else ""
    return (
        f"epoch {module.current_epoch + 1} of {trainer.max_epochs}, training batch "
        f"{batch_idx + 1}{of_batches} (optimizer step {trainer.global_step + 1})"
    )


class NonFiniteMetricStop(pl.Callback):
    """Stops the run when a validation metric (`valid/...`) is NaN or infinite.

    It runs before the checkpoint callbacks (Lightning orders those last) and before
    early stopping, so no checkpoint or stop decision is taken on a NaN. The metrics it
    reads are synchronised across DDP processes, so every process stops together.
    (Lightning's sanity check publishes no metrics and decides nothing; a NaN there
    shows again in the first epoch's validation.)
    """

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        bad = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if name.startswith("valid/") and not is_finite(torch.as_tensor(value))
        }
        if not bad:
            return
        first = getattr(pl_module, "nonfinite_valid", None)  # noted by the module's step
        when = f"after epoch {pl_module.current_epoch + 1} of {trainer.max_epochs}"
        metrics = ", ".join(f"{name} = {value}" for name, value in bad.items())
        where = f" (first in validation batch {first})" if first else ""
        raise NonFiniteError(
            f"non-finite validation metric {metrics} {when}{where}: the model would be "
            "chosen and saved on a broken metric, so the run stops. Check those rows' inputs "
            "and labels, or lower `training.lr`"
        )
