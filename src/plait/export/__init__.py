"""Ship a trained model as ONNX: `plait.export(model, out_dir)` and `plait.load(out_dir)`.

One of the ship packages: it may import the `ship` extra (onnx, onnxruntime, onnxscript),
and nothing outside the ship packages imports it at import time; its own names load
lazily too, so `plait --help` (which registers `plait export`) imports none of it.
Modules: `graphs` (flat named inputs around the models), `caption_graphs` and
`caption_runtime` (a captioner's two graphs and its decoding over them), `exporters`
(torch.onnx, per graph), `parity` (the check on real rows), `folder` (the export folder), `runtime` (ONNX
Runtime sessions and providers), `onnx_predictor` (the predictors over them), `api`
(`export`), `report` (the parity table), `cli` (`plait export`).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {
    "export": "plait.export.api",
    "ExportResult": "plait.export.api",
    "Tolerance": "plait.export.parity",
    "OnnxPredictor": "plait.export.onnx_predictor",
    "OnnxAlignedPredictor": "plait.export.onnx_predictor",
    "OnnxCaptioningPredictor": "plait.export.onnx_predictor",
    "load_export": "plait.export.onnx_predictor",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'plait.export' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """`plait.export(model, out_dir)` must work after `import plait.export` too, and
    importing a package binds it as an attribute of its parent, hiding the lazy
    `plait.export` function; so the package itself is callable and calls `export`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from plait.export.api import export

        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
