"""What a shrunk model costs and saves: parameters, size on disk, latency, its main metric.

Latency is the median of repeated forward passes on one real row (batch 1), after a
warm-up, the stages' models timed in turns, with the threads torch has now (the CLI sets
them from `--threads`); the main
metric is the task's headline number from `predictor.evaluate` (accuracy, macro F1, R2,
or the mean R@5 of both retrieval directions for aligned models).
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from plait.data.batch import Batch
from plait.model_folder import WEIGHTS
from plait.tasks import BasePredictor
from plait.utils.params import parameter_counts


@dataclass
class Measurement:
    """One row of a compression report."""

    stage: str
    params: int
    nonzero_params: int
    size_mb: float | None  # model.safetensors on disk
    zipped_mb: float | None  # the same, deflate-compressed (what sparsity saves in transit)
    latency_ms: float
    metric: str
    value: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def forward(predictor: BasePredictor) -> Any:
    """The function that runs the model on one batch, per kind of model: a supervised
    model's outputs, or an aligned model's two tower embeddings."""
    pair = getattr(predictor.model, "pair", None)
    if pair is None:

        def supervised(model: nn.Module, batch: Batch) -> Any:
            return model(batch.inputs, batch.presence)

        return supervised

    def aligned(model: nn.Module, batch: Batch) -> Any:
        embed = getattr(model, "embed")  # noqa: B009  (AlignedModel.embed; typed as Module)
        return [embed(name, batch.inputs[name]) for name in pair]

    return aligned


def stage_latencies(
    predictor: BasePredictor, models: dict[str, nn.Module], batch: Batch, repeats: int = 30
) -> dict[str, float]:
    """Median milliseconds of one forward pass on `batch` for each stage's model, timed
    in turns (one pass of each per round, after warm-up) so a busy machine slows every
    stage alike."""
    from plait.compress.quant_measure import interleaved

    run = forward(predictor)
    calls = {stage: partial(run, model.eval(), batch) for stage, model in models.items()}
    with torch.inference_mode():
        return {stage: round(ms, 3) for stage, ms in interleaved(calls, repeats).items()}


def main_metric(predictor: BasePredictor, metrics: dict[str, Any]) -> tuple[str, float | None]:
    """The task's headline metric name and value from `evaluate`'s output."""
    retrieval = metrics.get("retrieval")
    if isinstance(retrieval, dict):
        values = [v["R@5"] for v in retrieval.values() if isinstance(v, dict) and "R@5" in v]
        return "R@5 (mean of both directions)", float(np.mean(values)) if values else None
    for key in ("accuracy", "f1_macro", "r2"):
        if isinstance(metrics.get(key), int | float):
            return key, float(metrics[key])
    return "none", None


def measure(
    stage: str,
    predictor: BasePredictor,
    metrics: dict[str, Any],
    one_row: Batch,
    folder: Path | None = None,
) -> Measurement:
    """Measure `predictor` at `stage`; `metrics` is its `evaluate` output on the test
    rows, sizes come from its saved `folder` when there is one."""
    counts = parameter_counts(predictor.model)
    nonzero = sum(int((p != 0).sum()) for p in predictor.model.parameters())
    metric, value = main_metric(predictor, metrics)
    size = zipped = None
    if folder is not None:
        weights = (folder / WEIGHTS).read_bytes()
        size = len(weights) / 1e6
        zipped = len(zlib.compress(weights, 6)) / 1e6
    return Measurement(
        stage,
        int(counts["params"]),
        nonzero,
        None if size is None else round(size, 4),
        None if zipped is None else round(zipped, 4),
        0.0,  # filled by `stage_latencies` once every stage's model exists
        metric,
        None if value is None else round(value, 4),
    )
