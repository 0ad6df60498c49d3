"""Tiny models to prune and quantize: built on the demo data, untrained unless a test
needs training (pruning and reloading do not)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plait.api import as_config
from plait.data import PreparedData, prepare_data
from plait.tasks import BasePredictor, task_of


@pytest.fixture(scope="session")
def prepared(demo_data: Path, tiny_config, tmp_path_factory) -> PreparedData:
    """The demo data prepared once (processors fitted, labels) for the tiny config."""
    config = as_config(tiny_config(tmp_path_factory.mktemp("runs")))
    return prepare_data(config, progress=False)


@pytest.fixture(scope="session")
def build_predictor(
    tiny_config, prepared: PreparedData, tmp_path_factory
) -> Callable[..., BasePredictor]:
    """build_predictor(**sections) -> an untrained predictor of the tiny config with
    `sections` merged in (e.g. fusion={"method": "tensor"})."""
    out = tmp_path_factory.mktemp("built")

    def build(**sections: Any) -> BasePredictor:
        config = as_config(tiny_config(out, **sections))
        task = task_of(config)
        model = task.build(config, prepared.processors, prepared.labels, load_weights=False)
        return task.predictor_of(model, config, prepared.processors, prepared.labels)

    return build


@pytest.fixture(scope="session")
def trained(tiny_config, tmp_path_factory) -> Path:
    """A tiny classifier trained one epoch: its saved model folder (read-only)."""
    from plait.api import train_run

    raw = tiny_config(tmp_path_factory.mktemp("trained"), training={"epochs": 1})
    return train_run(as_config(raw)).model_dir
