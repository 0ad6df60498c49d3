"""What `plait serve` loads: the predictor for the chosen runtime and the index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plait.errors import PlaitError

EXPORT_RECORD = "export.json"  # what marks an ONNX export folder (`plait export`)


def load_for_serving(model: Path, index: Path | None, runtime: str) -> tuple[Any, Any]:
    """(predictor, index or None) for `plait serve`, with a clear error for each misuse.

    `torch` serves a saved model folder with PyTorch; `onnx` serves an export folder
    (`plait export MODEL --format onnx --out DIR`) with ONNX Runtime, through the same
    processors and with the same answers.
    """
    model = Path(model)
    if not model.is_dir():
        raise PlaitError(f"{model}: no model folder here (train one with `plait train`)")
    exported = (model / EXPORT_RECORD).is_file()
    if runtime == "onnx":
        if not exported:
            raise PlaitError(
                f"{model} is a PyTorch model folder; --runtime onnx serves an ONNX export: "
                f"make one with `plait export {model} --format onnx --out {model}-onnx` and "
                "serve that folder"
            )
        try:
            from plait.export.onnx_predictor import load_export
        except ImportError:
            raise PlaitError(
                "--runtime onnx is not available in this install (plait.export is missing); "
                "serve the PyTorch model folder with --runtime torch"
            ) from None
        predictor: Any = load_export(model)
    else:
        if exported:
            raise PlaitError(f"{model} is an ONNX export: serve it with --runtime onnx")
        from plait.predictor import load

        predictor = load(model)
    loaded = None
    if index is not None:
        from plait.retrieval.search import load_index

        loaded = load_index(index)
    return predictor, loaded
