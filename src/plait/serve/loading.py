"""What `plait serve` loads: the predictor for the chosen runtime and the index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plait.errors import PlaitError


def load_for_serving(model: Path, index: Path | None, runtime: str) -> tuple[Any, Any]:
    """(predictor, index or None) for `plait serve`, with a clear error for each misuse."""
    if not Path(model).is_dir():
        raise PlaitError(f"{model}: no model folder here (train one with `plait train`)")
    if runtime == "onnx":
        raise PlaitError(
            "--runtime onnx is not available yet in this build (plait.export has not landed); "
            "serve the PyTorch model with --runtime torch"
        )
    from plait.predictor import load

    predictor = load(model)
    loaded = None
    if index is not None:
        from plait.retrieval.search import load_index

        loaded = load_index(index)
    return predictor, loaded
