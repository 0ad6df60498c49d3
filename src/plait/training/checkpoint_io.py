"""Checkpoint I/O for Lightning: atomic writes, and loads that never unpickle code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from plait.utils.io import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temp file then rename, so an interrupted save never corrupts `last.ckpt`.

    Loading uses `torch.load(weights_only=True)`: a checkpoint can hold tensors and plain
    values only, never arbitrary pickled objects.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        atomic_write(Path(path), lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)
