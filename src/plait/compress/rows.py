"""The real rows compression is measured on: the test split, and one row for latency.

The test split is the one the model was scored on: `--test TABLE` when given, else the
config's `data.test` table, else the held-out rows `plait train` split off the training
table (re-split with the run's seed; the processors fitted again must be the model's).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plait.data import MultimodalDataset
from plait.data.batch import Batch
from plait.errors import PlaitError
from plait.tasks import BasePredictor


def test_rows(predictor: BasePredictor, test: str | Path | None = None) -> tuple[Any, str]:
    """(the evaluation data: a table path or a prepared dataset, what it is in words)."""
    if test is not None:
        return str(test), str(test)
    config = predictor.config
    if config.data.test and Path(config.data.test).exists():
        return str(config.data.test), str(config.data.test)
    train = config.data.train
    if not train or not Path(train).exists():
        raise PlaitError(
            f"no test rows to measure on: the model's training table {train} is not there "
            "and its config names no test table; pass --test TABLE"
        )
    from plait.data import prepare_data

    prepared = prepare_data(config, progress=False)
    for name, processor in prepared.processors.items():
        if processor_state(processor) != processor_state(predictor.processors[name]):
            raise PlaitError(
                f"{train} no longer gives the model's `{name}` processor (the table changed "
                "since training), so its test split is unknown; pass --test TABLE"
            )
    for split in ("test", "valid"):
        dataset = getattr(prepared, split)
        if dataset is not None and len(dataset):
            return dataset, f"the {split} split of {train}"
    raise PlaitError(f"{train} leaves no test or validation rows; pass --test TABLE")


def processor_state(processor: Any) -> str:
    """A processor's fitted state as comparable text."""
    return json.dumps(processor.state_dict(), sort_keys=True, default=str)


def first_rows(predictor: BasePredictor, data: Any, count: int = 1) -> Batch:
    """The first `count` good rows of `data` as one collated batch (on the CPU)."""
    dataset = predictor.prepare(data, labels=False, on_error="skip")
    if not isinstance(dataset, MultimodalDataset) or len(dataset) == 0:
        raise PlaitError("no readable rows to measure latency on")
    return next(iter(predictor.loader(dataset, count)))
