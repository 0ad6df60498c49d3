"""Shrink a trained model: prune it (`prune`) or quantize its ONNX export to INT8.

The only package besides `plait.export` and `plait.serve` that may import the `ship`
extra (torch-pruning, ONNX Runtime); it does so inside functions, so importing it is
cheap.
"""

from __future__ import annotations

from typing import Any

from plait.compress.prune import PruneResult, prune

__all__ = ["PruneResult", "QuantizeResult", "prune", "quantize"]


def quantize(*args: Any, **kwargs: Any) -> Any:
    """`plait.compress.quantize.quantize` (ONNX Runtime is imported only when called)."""
    from plait.compress.quantize import quantize as run

    return run(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "QuantizeResult":
        from plait.compress.quantize import QuantizeResult

        return QuantizeResult
    raise AttributeError(f"module 'plait.compress' has no attribute {name!r}")
