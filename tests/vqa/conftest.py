"""Tiny reasoning scenes and a question answerer trained on them for a few steps (no
Lightning: the task's own step, as training runs it), shared by the VQA tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.datasets.reasoning import generate_reasoning
from plait.tasks import TASKS
from plait.tasks.vqa_predictor import VqaPredictor


def vqa_config(data: Path, out: Path, **vqa: Any) -> dict:
    """A raw config over the reasoning data at `data` that builds in well under a second."""
    return {
        "name": "vqa",
        "output_dir": str(out),
        "data": {
            "train": str(data / "train.csv"),
            "valid": str(data / "valid.csv"),
            "test": str(data / "test.csv"),
            "id": "id",
            "label": "answer",
        },  # fmt: skip
        "modalities": {
            "image": {
                "kind": "image",
                "column": "image",
                "size": 32,
                "augment": False,
                "encoder": {"type": "image_cnn", "dim": 16, "layers": 2},
            },
            "question": {
                "kind": "text",
                "column": "question",
                "max_length": 16,
                "encoder": {"type": "text_gru", "dim": 16, "layers": 1},
            },
        },  # fmt: skip
        "vqa": {
            "head": "fusion",
            "head_options": {"dim": 16, "hidden": 16, "pool_side": 2},
            "type_columns": ["question_type", "relation"],
            **vqa,
        },  # fmt: skip
        "training": {
            "epochs": 1,
            "batch_size": 16,
            "progress": False,
            "tensorboard": False,
            "threads": 1,
        },  # fmt: skip
    }


def train_steps(raw: dict, steps: int, lr: float = 0.1) -> tuple[VqaPredictor, list[float]]:
    """A predictor after `steps` gradient steps on one batch of the training split, and the
    loss of each step."""
    torch.manual_seed(0)
    config = PlaitConfig.from_dict(raw)
    task = TASKS["vqa"]
    data = prepare_data(config, progress=False)
    model = task.build(config, data.processors, data.labels)
    step = task.step(config, data)
    batch = next(iter(DataLoader(data.train, batch_size=16, collate_fn=data.train.collate)))
    model.train()
    losses = []
    for _ in range(steps):  # plain gradient descent: torch.optim imports torch._dynamo (slow)
        loss = step.terms(model, batch, step.outputs(model, batch))["loss"]
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for weight in model.parameters():
                if weight.grad is not None:
                    weight -= lr * weight.grad
        losses.append(float(loss.detach()))
    return VqaPredictor(model.eval(), config, data.processors, data.labels), losses


def table(data: Path, split: str = "test") -> pd.DataFrame:
    """A split as a DataFrame of text cells, its picture paths made absolute."""
    frame = pd.read_csv(data / f"{split}.csv", dtype=str)
    frame["image"] = [str(data / p) for p in frame["image"]]
    return frame


@pytest.fixture(scope="session")
def reasoning_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 / 2 / 2 scenes, 6 questions each (read-only: copy before editing)."""
    root = tmp_path_factory.mktemp("reasoning")
    generate_reasoning(root, n_train=10, n_valid=2, n_test=2, seed=0, questions=6)
    return root


@pytest.fixture(scope="session")
def trained_vqa(
    reasoning_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[float]]:
    """The folder of a question answerer trained for a few steps, and its losses."""
    root = tmp_path_factory.mktemp("vqa-model")
    predictor, losses = train_steps(vqa_config(reasoning_data, root), 6)
    return predictor.save(root / "model"), losses


@pytest.fixture
def saved_vqa(trained_vqa: tuple[Path, list[float]]) -> Path:
    return trained_vqa[0]
