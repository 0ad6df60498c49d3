"""Tiny saved models for the export tests: built and saved without training (random
weights are enough for parity), on the session's demo data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.tasks import task_of


def save_untrained(raw: dict[str, Any], folder: Path) -> Path:
    """Build the model `raw` describes (processors fitted on its train table) and save it."""
    torch.manual_seed(0)
    config = PlaitConfig.from_dict(raw)
    data = prepare_data(config, progress=False)
    task = task_of(config)
    model = task.build(config, data.processors, data.labels)
    predictor = task.predictor_of(model.eval(), config, data.processors, data.labels)
    return predictor.save(folder)


@pytest.fixture(scope="session")
def export_data(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo tables with absolute media paths (so a table works from any folder)."""
    out = tmp_path_factory.mktemp("export-data")
    for split in ("train", "test"):
        frame = pd.read_csv(demo_data / f"{split}.csv")
        for column in ("image", "audio"):
            frame[column] = [str(demo_data / v) if isinstance(v, str) else v for v in frame[column]]
        frame.to_csv(out / f"{split}.csv", index=False)
    return out


@pytest.fixture(scope="session")
def untrained(tiny_config: Callable[..., dict]) -> Callable[..., Path]:
    """untrained(folder, configure=None, **sections) -> a saved tiny model over the demo
    data; `configure(raw)` may rewrite the raw config (returns it)."""

    def build(
        folder: Path, configure: Callable[[dict], dict] | None = None, **sections: Any
    ) -> Path:
        raw = tiny_config(folder.parent / "runs", **sections)
        return save_untrained(configure(raw) if configure else raw, folder)

    return build
