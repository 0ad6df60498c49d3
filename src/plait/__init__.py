"""Plait: multimodal deep learning, from a table of text, images and audio to a model.

    import plait
    run = plait.train("my.yaml")
    model = plait.load(run.model_dir)
    model.predict(df)

Names are imported lazily so `import plait` (and `plait --help`) stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "train": "plait.api",
    "check_data": "plait.api",
    "evaluate": "plait.api",
    "predict": "plait.api",
    "similarity": "plait.api",
    "embed": "plait.api",
    "zeroshot": "plait.api",
    "search": "plait.api",
    "explain": "plait.api",
    "caption": "plait.api",
    "ask": "plait.api",
    "prune": "plait.compress",
    "quantize": "plait.compress",
    "load": "plait.predictor",
    "export": "plait.export",
    "Predictor": "plait.predictor",
    "AlignedPredictor": "plait.alignment.predictor",
    "CaptioningPredictor": "plait.tasks.captioning_predictor",
    "VqaPredictor": "plait.tasks.vqa_predictor",
    "EmbeddingIndex": "plait.retrieval.index",
    "create_app": "plait.serve.app",
    "PlaitConfig": "plait.config",
    "run_demo": "plait.demo",
    "PlaitError": "plait.errors",
    "ConfigError": "plait.errors",
    "DataError": "plait.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'plait' has no attribute {name!r}")
