"""What INT8 costs and saves, per graph: size, latency at batch 1 and 32 (PyTorch eager,
ONNX FP32, ONNX INT8), and the quality change on the test rows.

- classifiers (and other supervised models): the task's metrics from `evaluate` on the
  FP32 and the INT8 export (accuracy and macro F1 for classes), and how often the INT8
  model's top class agrees with FP32's;
- aligned towers: the cosine between each row's FP32 and INT8 embedding (min, mean),
  and retrieval R@1/R@5/R@10 (mean of both directions) before and after.

Latency is the median of repeated runs after a warm-up, the runtimes timed in turns so
a busy machine slows each alike, on the threads the sessions and torch were given; the
batch of 32 repeats the test rows when there are fewer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plait.compress.calibration import feed, graph_batches
from plait.data.batch import Batch
from plait.export.graphs import GraphSpec
from plait.tasks import BasePredictor


@dataclass
class LatencyRow:
    """One graph on one runtime."""

    graph: str
    runtime: str  # "pytorch", "onnx fp32", "onnx int8"
    size_mb: float | None
    latency_b1_ms: float
    latency_b32_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def interleaved(runs: Mapping[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median milliseconds of each call, timed in turns (one call of each per round,
    after 3 warm-up rounds), so a busy machine slows every runtime alike."""
    for _ in range(3):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t) * 1000) for name, t in times.items()}


def sized(batch: Batch, size: int) -> Batch:
    """`batch` cut or repeated to exactly `size` rows."""
    reps = -(-size // len(batch))
    inputs = {
        m: {k: torch.cat([v] * reps)[:size] for k, v in t.items()} for m, t in batch.inputs.items()
    }
    presence = {m: torch.cat([p] * reps)[:size] for m, p in batch.presence.items()}
    return Batch(inputs, presence, None, (batch.ids * reps)[:size])


def latency_rows(
    name: str,
    spec: GraphSpec,
    sessions: dict[str, Any],
    sizes: dict[str, float],
    torch_run: Callable[[Batch], Any] | None,
    batch: Batch,
    repeats: int,
) -> list[LatencyRow]:
    """Latency of graph `name` at batch 1 and 32 on each runtime (`sessions`: runtime ->
    ONNX Runtime session; `torch_run`: the PyTorch model on a batch, when available)."""
    one, many = sized(batch, 1), sized(batch, 32)
    feeds = {1: feed(spec, one), 32: feed(spec, many)}
    medians: dict[int, dict[str, float]] = {}
    for size, rows_in, count in ((1, one, repeats), (32, many, max(3, repeats // 5))):
        runs: dict[str, Callable[[], Any]] = {}
        if torch_run is not None:
            runs["pytorch"] = partial(torch_run, rows_in)
        for runtime, session in sessions.items():
            runs[runtime] = partial(session.run, [spec.output], feeds[size])
        with torch.inference_mode():
            medians[size] = interleaved(runs, count)
    return [
        LatencyRow(
            name,
            runtime,
            None if runtime == "pytorch" else round(sizes[runtime], 4),
            round(medians[1][runtime], 3),
            round(medians[32][runtime], 3),
        )
        for runtime in medians[1]
    ]


def first_batch(predictor: BasePredictor, spec: GraphSpec, data: Any) -> Batch:
    """Up to 32 test rows for graph `spec` (rows with the tower's modality for a tower)."""
    return graph_batches(predictor, spec, data, 32, 32, shuffle_seed=None)[0]


def file_mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def supervised_quality(fp32: BasePredictor, int8: BasePredictor, data: Any) -> dict[str, Any]:
    """The task's metrics before and after, and top-class agreement (classifiers)."""
    before, after = fp32.evaluate(data), int8.evaluate(data)
    quality: dict[str, Any] = {}
    for key in ("accuracy", "f1_macro", "r2", "rmse", "subset_accuracy"):
        if isinstance(before.get(key), int | float) and isinstance(after.get(key), int | float):
            quality[key] = _change(before[key], after[key])
    outputs = getattr(fp32, "outputs", None)
    if callable(outputs) and fp32.task in ("classification", "multilabel"):
        _, a, _ = outputs(data)
        _, b, _ = getattr(int8, "outputs")(data)  # noqa: B009  (Predictor.outputs)
        if fp32.task == "classification":
            quality["top_class_agreement"] = round(float((a.argmax(1) == b.argmax(1)).mean()), 4)
        quality["max_abs_probability_change"] = round(float(np.abs(a - b).max()), 4)
    return quality


def aligned_quality(fp32: Any, int8: Any, data: Any) -> dict[str, Any]:
    """Per tower cosine drift (min, mean), and retrieval recall before and after."""
    quality: dict[str, Any] = {"cosine": {}}
    for name in fp32.pair:
        ids_a, a = fp32.embed(data, name)
        ids_b, b = int8.embed(data, name)
        assert ids_a == ids_b
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        quality["cosine"][name] = {
            "min": round(float(cosine.min()), 4),
            "mean": round(float(cosine.mean()), 4),
            "rows": len(ids_a),
        }
    before, after = fp32.evaluate(data), int8.evaluate(data)
    for k in ("R@1", "R@5", "R@10"):
        quality[k] = _change(_mean_recall(before, k), _mean_recall(after, k))
    return quality


def _mean_recall(metrics: dict[str, Any], key: str) -> float:
    values = [v[key] for v in metrics.get("retrieval", {}).values() if key in v]
    return float(np.mean(values)) if values else float("nan")


def _change(before: float, after: float) -> dict[str, float]:
    return {
        "fp32": round(float(before), 4),
        "int8": round(float(after), 4),
        "change": round(float(after) - float(before), 4),
    }
