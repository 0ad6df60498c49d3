"""Calibration rows for static INT8: real training rows, preprocessed by the model's own
processors, fed to ONNX Runtime's calibrator in the graph's input order.

The ranges of a statically quantized graph are fixed from these rows, so they must look
like what the model will see: a seeded random sample of the training table (not its first
rows, which are often sorted by class), rows with a missing modality included for a
fused graph (its presence masks are inputs), and only rows that have the tower's
modality for an aligned tower.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from onnxruntime.quantization import CalibrationDataReader
from torch.utils.data import DataLoader, Subset

from plait.data.batch import Batch
from plait.errors import PlaitError
from plait.export.graphs import PRESENT, GraphSpec
from plait.tasks import BasePredictor

BATCH = 8


class RowsReader(CalibrationDataReader):
    """Feeds (input name -> array) for ONNX Runtime's calibrator, one batch per call."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = feeds
        self._next: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._next, None)

    def rewind(self) -> None:
        self._next = iter(self.feeds)


def graph_batches(
    predictor: BasePredictor,
    spec: GraphSpec,
    data: Any,
    rows: int | None,
    batch_size: int,
    *,
    shuffle_seed: int | None = 0,
) -> list[Batch]:
    """Collated batches of `data` for the modalities of `spec` (a seeded sample of at
    most `rows` rows); a tower's batches keep only the rows that have its modality."""
    modalities = sorted({item.modality for item in spec.inputs})
    tower = not any(item.key == PRESENT for item in spec.inputs)
    dataset = predictor.prepare(data, modalities=modalities, labels=False, on_error="skip")
    order = np.arange(len(dataset))
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(dataset))
    if rows is not None:
        order = order[:rows]
    loader = DataLoader(
        Subset(dataset, order.tolist()), batch_size=batch_size, collate_fn=dataset.collate
    )
    batches = []
    for batch in loader:
        if tower:
            keep = batch.presence[modalities[0]].bool().nonzero().squeeze(1)  # [b]
            if not len(keep):
                continue
            batch = select_rows(batch, keep)
        batches.append(batch)
    if not batches:
        raise PlaitError(f"no readable rows with {', '.join(modalities)} in {data}")
    return batches


def select_rows(batch: Batch, rows: torch.Tensor) -> Batch:
    """The rows `rows` ([b] indices) of `batch`."""
    inputs = {m: {k: v[rows] for k, v in t.items()} for m, t in batch.inputs.items()}
    presence = {m: p[rows] for m, p in batch.presence.items()}
    labels = batch.labels[rows] if batch.labels is not None else None
    return Batch(inputs, presence, labels, [batch.ids[i] for i in rows.tolist()])


def feed(spec: GraphSpec, batch: Batch) -> dict[str, np.ndarray]:
    """ONNX Runtime's feed of one batch, in the graph's input names."""
    tensors = spec.flatten(batch.inputs, batch.presence)
    return {
        name: t.detach().cpu().numpy() for name, t in zip(spec.input_names, tensors, strict=True)
    }


def calibration_reader(
    predictor: BasePredictor, spec: GraphSpec, data: Any, rows: int
) -> RowsReader:
    """A reader over `rows` sampled training rows for the graph `spec`."""
    batches = graph_batches(predictor, spec, data, rows, BATCH)
    return RowsReader([feed(spec, b) for b in batches])
