"""The Lightning module's task-independent parts: random state saved for exact resume
(CUDA included), the learning-rate schedule, the checkpoint monitor's direction, and no
warning filters installed by importing training."""

from __future__ import annotations

import io
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from plait.config import PlaitConfig, TrainingConfig, monitor_mode
from plait.training import module as module_mod
from plait.training.module import restore_rng_state, rng_state, warmup_schedule


class FakeCuda:
    """Two CUDA devices' generator states, as `torch.cuda` would report them."""

    def __init__(self) -> None:
        self.states = [torch.arange(8, dtype=torch.uint8), torch.arange(8, 16, dtype=torch.uint8)]
        self.restored: list[torch.Tensor] | None = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        cuda = module_mod.torch.cuda
        monkeypatch.setattr(cuda, "is_available", lambda: True)
        monkeypatch.setattr(cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(cuda, "device_count", lambda: 2)
        monkeypatch.setattr(cuda, "get_rng_state_all", lambda: [s.clone() for s in self.states])
        monkeypatch.setattr(cuda, "set_rng_state_all", self._set)

    def _set(self, states: list[torch.Tensor]) -> None:
        self.restored = [s.clone() for s in states]


def _through_a_checkpoint(state: dict) -> dict:
    """What a checkpoint written by AtomicCheckpointIO gives back (weights_only load)."""
    buffer = io.BytesIO()
    torch.save({"plait_rng": state}, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)["plait_rng"]


def test_checkpoints_keep_every_cuda_devices_rng_state(monkeypatch: pytest.MonkeyPatch):
    cuda = FakeCuda()
    cuda.install(monkeypatch)
    saved = _through_a_checkpoint(rng_state())
    assert [s.tolist() for s in saved["cuda"]] == [s.tolist() for s in cuda.states]

    restore_rng_state(saved)
    assert cuda.restored is not None
    assert [s.tolist() for s in cuda.restored] == [s.tolist() for s in cuda.states]


def test_cpu_and_python_states_come_back_exactly():
    torch.manual_seed(3)
    random.seed(3)
    saved = _through_a_checkpoint(rng_state())
    expected = (torch.rand(4), random.random())
    torch.manual_seed(99)
    random.seed(99)
    restore_rng_state(saved)
    assert torch.equal(torch.rand(4), expected[0]) and random.random() == expected[1]


def test_a_cpu_checkpoint_has_no_cuda_state_and_restores_without_cuda(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(module_mod.torch.cuda, "is_available", lambda: False)
    saved = rng_state()
    assert "cuda" not in saved
    restore_rng_state(saved)  # no CUDA call is made


def test_the_module_saves_the_rng_state_with_the_checkpoint(monkeypatch: pytest.MonkeyPatch):
    FakeCuda().install(monkeypatch)
    module = module_mod.TrainingModule(TrainingConfig())
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    assert {"torch", "python", "cuda"} <= set(checkpoint["plait_rng"])
    module.on_load_checkpoint(checkpoint)
    assert module._restored_rng is checkpoint["plait_rng"]


def _lrs(kind: str, total: int, warmup: int) -> list[float]:
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    schedule = warmup_schedule(optimizer, total, warmup, kind)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return lrs


def test_schedules_warm_up_linearly_then_decay():
    cosine = _lrs("cosine", 10, 2)
    assert cosine[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert cosine[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))
    linear = _lrs("linear", 10, 0)
    assert linear == pytest.approx([1 - i / 10 for i in range(10)])
    assert _lrs("constant", 5, 0) == pytest.approx([1.0] * 5)


@pytest.mark.parametrize(
    ("monitor", "mode", "expected"),
    [
        ("valid/loss", "auto", "min"),
        ("valid/mae", "auto", "min"),
        ("valid/r2", "auto", "max"),
        ("valid/accuracy", "auto", "max"),
        ("valid/macro_f1", "auto", "max"),
        ("valid/R@1", "auto", "max"),
        ("valid/r2", "min", "min"),
        ("valid/loss", "max", "max"),
    ],
)
def test_monitor_mode(monitor: str, mode: str, expected: str):
    assert monitor_mode(TrainingConfig(monitor=monitor, monitor_mode=mode)) == expected


def test_the_best_checkpoint_follows_the_monitor_mode(tiny_config, tmp_path: Path):
    import importlib

    from lightning.pytorch.callbacks import ModelCheckpoint

    fit_module = importlib.import_module("plait.training.fit")
    raw = tiny_config(tmp_path, "r2", training={"monitor": "valid/r2"})
    trainer = fit_module._trainer(PlaitConfig.from_dict(raw), tmp_path / "r2", has_valid=True)
    best = next(c for c in trainer.callbacks if type(c) is ModelCheckpoint)
    assert best.monitor == "valid/r2" and best.mode == "max"


def test_importing_training_installs_no_warning_filters():
    code = (
        "import warnings, lightning.pytorch, transformers\n"
        "before = list(warnings.filters)\n"
        "import plait.training.fit, plait.api\n"
        "added = [f for f in warnings.filters if f not in before]\n"
        "print(len(added))\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    env = {"PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "0", out.stdout + out.stderr
