"""How many optimizer steps an epoch makes, and a notice when that is too few to learn.

A big `batch_size` on a small table trains on very few steps: the aligned example at
batch 256 on 640 training rows made 3 steps an epoch and scored R@1 0.28 where batch 32
scored 0.82 for the same compute (bench/RESULTS.md, "First try"). Nothing fails, so the
run log says it before training starts.
"""

from __future__ import annotations

import math

from plait.config import TrainingConfig

# fewer optimizer steps than this in an epoch earn the notice
FEW_STEPS = 10


def optimizer_steps_per_epoch(
    rows: int,
    batch_size: int,
    accumulate: int = 1,
    replicas: int = 1,
    drop_last: bool = False,
) -> int:
    """Optimizer steps of one epoch: each of `replicas` processes takes its shard of
    `rows` in batches of `batch_size`; every `accumulate` batches make one step, and a
    shorter last window still steps (as Lightning does at the end of an epoch)."""
    per_replica = rows // replicas if drop_last else math.ceil(rows / replicas)
    batches = per_replica // batch_size if drop_last else math.ceil(per_replica / batch_size)
    return math.ceil(batches / accumulate)


def few_steps_notice(rows: int, training: TrainingConfig) -> str | None:
    """The warning for a run whose epochs make fewer than `FEW_STEPS` optimizer steps, or
    None. `devices: auto` counts as one process (the shard count is not known yet)."""
    replicas = training.devices if isinstance(training.devices, int) else 1
    steps = optimizer_steps_per_epoch(rows, training.batch_size, training.accumulate, replicas)
    if steps >= FEW_STEPS:
        return None
    setup = f"{rows} training rows at batch_size {training.batch_size}"
    if training.accumulate > 1:
        setup += f" with accumulate {training.accumulate}"
    if replicas > 1:
        setup += f" on {replicas} devices"
    total = steps * training.epochs
    return (
        f"only {steps} optimizer step(s) per epoch ({setup}; {total} in "
        f"{training.epochs} epoch(s)): the model may barely learn. Use a smaller "
        f"training.batch_size (one that gives at least {FEW_STEPS} steps per epoch) or "
        "more training.epochs"
    )
