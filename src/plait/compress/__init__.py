"""Shrink a trained model: prune it (`prune`) or quantize its ONNX export to INT8.

The only package besides `plait.export` and `plait.serve` that may import the `ship`
extra (torch-pruning, ONNX Runtime); it does so inside functions, so importing it is
cheap.
"""

from __future__ import annotations

from plait.compress.prune import PruneResult, prune

__all__ = ["PruneResult", "prune"]
