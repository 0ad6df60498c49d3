"""The processor of each modality kind, as one table, plus building, saving and restoring.

`PROCESSORS` maps a config's `modalities.<name>.kind` to its class: adding a kind is one
module with a `Processor` subclass (the contract is in `processor_base.py`) and one row
here. Nothing registers itself on import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plait.data.audio import AudioProcessor
from plait.data.image import ImageProcessor
from plait.data.processor_base import (
    STATE_FILE,
    Processor,
    is_blank,
    pad_stack,
    read_saved,
    resolve_path,
)
from plait.data.text import TextProcessor

PROCESSORS: dict[str, type[Processor]] = {
    "text": TextProcessor,
    "image": ImageProcessor,
    "audio": AudioProcessor,
}

__all__ = [
    "PROCESSORS",
    "STATE_FILE",
    "Processor",
    "build_processor",
    "is_blank",
    "load_processor",
    "load_processors",
    "pad_stack",
    "processor_class",
    "resolve_path",
    "restore_processor",
    "save_processors",
]


def processor_class(kind: str) -> type[Processor]:
    """The `Processor` subclass for a modality kind."""
    try:
        return PROCESSORS[kind]
    except KeyError:
        raise ValueError(f"unknown modality kind {kind!r}; known: {sorted(PROCESSORS)}") from None


def build_processor(modality: Any) -> Processor:
    """A fresh processor for a modality config (hub model when `encoder.type: huggingface`)."""
    hub_model = modality.encoder.model if modality.encoder.type == "huggingface" else None
    return processor_class(modality.kind)(modality, hub_model=hub_model)


def load_processor(folder: str | Path, config: Any = None) -> Processor:
    """Rebuild the processor saved in `folder`, whatever its kind (offline)."""
    return processor_class(read_saved(folder)["kind"]).load_state(folder, config=config)


def restore_processor(modality: Any, folder: str | Path) -> Processor:
    """Rebuild the processor saved in `folder` for `modality` (offline; hub files included)."""
    return load_processor(folder, config=modality)


def save_processors(processors: dict[str, Processor], folder: str | Path) -> None:
    """Save each processor under `folder/<modality name>/`."""
    for name, processor in processors.items():
        processor.save(Path(folder) / name)


def load_processors(folder: str | Path, names: list[str] | None = None) -> dict[str, Processor]:
    """Restore processors saved by `save_processors` (all sub-folders, or only `names`)."""
    folder = Path(folder)
    if names is None:
        names = sorted(p.name for p in folder.iterdir() if (p / STATE_FILE).is_file())
    return {name: load_processor(folder / name) for name in names}
