"""Serve a trained model over HTTP (`plait serve`): FastAPI + uvicorn, micro-batched.

Needs the `ship` extra (`pip install plait[ship]`). Names load lazily, so registering
the CLI command imports none of it.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {"create_app": "plait.serve.app", "ServeSettings": "plait.serve.settings"}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'plait.serve' has no attribute {name!r}")
