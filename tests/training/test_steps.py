"""The notice for too few optimizer steps per epoch: counted right, said once at the start
of a run that has too few, and never for a run with enough."""

from __future__ import annotations

import logging

from plait.api import train_run
from plait.config import PlaitConfig, TrainingConfig
from plait.training.steps import FEW_STEPS, few_steps_notice, optimizer_steps_per_epoch


def test_steps_count_batches_accumulation_devices_and_drop_last():
    assert optimizer_steps_per_epoch(640, 256) == 3  # the README example's first try
    assert optimizer_steps_per_epoch(640, 32) == 20
    assert optimizer_steps_per_epoch(640, 32, accumulate=4) == 5
    assert optimizer_steps_per_epoch(640, 32, accumulate=3) == 7  # the short window steps
    assert optimizer_steps_per_epoch(640, 32, replicas=2) == 10
    assert optimizer_steps_per_epoch(650, 100) == 7
    assert optimizer_steps_per_epoch(650, 100, drop_last=True) == 6


def test_notice_names_the_numbers_and_the_remedy():
    notice = few_steps_notice(640, TrainingConfig(batch_size=256, epochs=4))
    assert notice is not None
    assert "only 3 optimizer step(s) per epoch" in notice
    assert "640 training rows at batch_size 256" in notice and "12 in 4 epoch(s)" in notice
    assert "smaller training.batch_size" in notice and "more training.epochs" in notice
    accumulated = few_steps_notice(640, TrainingConfig(batch_size=32, accumulate=8))
    assert accumulated is not None and "with accumulate 8" in accumulated
    assert "on 2 devices" in (few_steps_notice(300, TrainingConfig(devices=2)) or "")


def test_no_notice_for_normal_configs():
    assert few_steps_notice(640, TrainingConfig()) is None  # defaults: batch 32, 20 steps
    assert few_steps_notice(765, TrainingConfig(batch_size=64)) is None  # 12 steps
    assert few_steps_notice(FEW_STEPS * 32, TrainingConfig(batch_size=32)) is None
    assert few_steps_notice(FEW_STEPS * 32 - 32, TrainingConfig(batch_size=32)) is not None


def _train(tiny_config, tmp_path, name: str, batch_size: int, caplog) -> list[str]:
    raw = tiny_config(tmp_path, name, training={"epochs": 1, "batch_size": batch_size})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="plait"):
        train_run(PlaitConfig.from_dict(raw))
    return [r.getMessage() for r in caplog.records if "optimizer step" in r.getMessage()]


def test_training_says_it_once_only_when_steps_are_few(tiny_config, tmp_path, caplog):
    # the demo data's 36 training rows: one batch of 36 is one step an epoch
    few = _train(tiny_config, tmp_path, "few", 36, caplog)
    assert len(few) == 1 and "only 1 optimizer step(s) per epoch" in few[0]
    assert "36 training rows at batch_size 36" in few[0]
    assert _train(tiny_config, tmp_path, "enough", 3, caplog) == []  # 12 steps
