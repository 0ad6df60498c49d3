"""The one interface every modality processor follows, and the helpers processors share.

A processor turns one cell of a manifest into the tensors an encoder reads. Splitting the
work into `load` (read a file; may fail on bad content) and `transform` (pure tensor work,
randomness only from the given generator) lets the data layer validate every row up front
with the same code the training loop uses, and keeps augmentation reproducible.

A fitted processor is saved with `save(folder)` as `plait_processor.json` (its config and
JSON-able state, such as a vocabulary) plus, for a pretrained model, the tokenizer / feature
extractor / image processor's own `save_pretrained` files, so `load_state(folder)` rebuilds
it offline without the original data or hub access.

The kinds (text, image, audio) subclass `Processor` in their own modules; the table that
maps a config's `kind` to its class, and building and restoring by kind, live in
`plait.data.processor`, which imports them all. This module imports none of them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import TypeAdapter
from torch import Tensor

from plait.config import ModalityConfig
from plait.utils.io import atomic_write_json

STATE_FILE = "plait_processor.json"


class Processor:
    """Base class. Subclasses set `kind` and implement `load`, `transform` and `placeholder`.

    Attributes:
        config: the modality's config block.
        hub_model: hub name or local folder of a pretrained model, None for scratch encoders.
    """

    kind: ClassVar[str] = ""

    def __init__(self, config: Any, hub_model: str | None = None) -> None:
        self.config = config
        self.hub_model = hub_model

    # ------------------------------------------------------------------ the contract
    @property
    def column(self) -> str:
        return self.config.column

    def fit(self, values: Any) -> None:
        """Learn from the training split's raw column values (a vocabulary); default no-op."""

    def is_missing(self, value: Any) -> bool:
        """None, NaN and blank strings are missing values (presence False), not errors."""
        return is_blank(value)

    def load(self, value: Any, base_dir: Path) -> Any:
        """Read one cell (a path relative to `base_dir`, or an in-memory value).

        Raises:
            ValueError: with a reason a user can act on, when the content is bad.
        """
        raise NotImplementedError

    def check(self, value: Any, base_dir: Path) -> None:
        """Validate one cell up front; raises ValueError(reason). Defaults to a full load."""
        self.load(value, base_dir)

    def transform(self, raw: Any, train: bool, generator: torch.Generator) -> dict[str, Tensor]:
        """One loaded sample -> unbatched tensors; randomness only from `generator`."""
        raise NotImplementedError

    def placeholder(self) -> dict[str, Tensor]:
        """What a missing sample looks like: same keys (and shapes) as a real one."""
        raise NotImplementedError

    def collate(self, items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Stack samples into a batch, padding any axis that differs with `pad_value(key)`."""
        return {
            key: pad_stack([item[key] for item in items], self.pad_value(key)) for key in items[0]
        }

    def pad_value(self, key: str) -> float:
        return 0.0

    # ------------------------------------------------------------- save and restore
    def state_dict(self) -> dict[str, Any]:
        """JSON-able fitted state (beyond the config); default empty."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def save(self, folder: str | Path) -> None:
        """Write everything needed to rebuild this processor offline into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        hub = self._hub_object()
        if hub is not None:
            hub.save_pretrained(str(folder))
        payload = {
            "kind": self.kind,
            "config": self.config.model_dump(mode="json"),
            "hub_model": self.hub_model,
            "hub_saved": hub is not None,
            "state": self.state_dict(),
        }
        atomic_write_json(folder / STATE_FILE, payload)

    @classmethod
    def load_state(cls, folder: str | Path, config: Any = None) -> Processor:
        """Rebuild a processor of this kind written by `save` (any kind:
        `plait.data.processor.load_processor`).

        `config` (a modality config) replaces the saved one, e.g. from a model's config.
        """
        payload = read_saved(folder)
        if not cls.kind or payload["kind"] != cls.kind:
            raise ValueError(
                f"{folder} holds a {payload['kind']!r} processor, not a {cls.kind or 'kind'}"
                " one; restore it with plait.data.processor.load_processor"
            )
        if config is None:
            config = TypeAdapter(ModalityConfig).validate_python(payload["config"])
        hub_model = str(folder) if payload.get("hub_saved") else payload.get("hub_model")
        processor = cls(config, hub_model=hub_model)
        processor.hub_model = payload.get("hub_model")  # keep the original name for display
        processor.load_state_dict(payload.get("state", {}))
        return processor

    def _hub_object(self) -> Any:
        """The transformers tokenizer / feature extractor / image processor, if any."""
        return None

    def __repr__(self) -> str:
        source = self.hub_model or "scratch"
        return f"{type(self).__name__}(column={self.column!r}, {source})"


# ---------------------------------------------------------------------------- helpers


def is_blank(value: Any) -> bool:
    """True for None, NaN, pandas NA and strings that are empty after stripping."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    if isinstance(value, np.ndarray | Tensor | list | tuple):
        return False
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def pad_stack(tensors: list[Tensor], value: float = 0.0) -> Tensor:
    """[*shape_i] x B -> [B, *max_shape]: stack, padding every axis at its end to the largest."""
    shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
    if all(list(t.shape) == shape for t in tensors):
        return torch.stack(tensors)
    out = tensors[0].new_full((len(tensors), *shape), value)
    for i, t in enumerate(tensors):
        index: tuple[int | slice, ...] = (i, *[slice(0, s) for s in t.shape])
        out[index] = t
    return out


def resolve_path(value: Any, base_dir: Path) -> Path:
    """A manifest cell -> an absolute path (relative paths are against the manifest's folder)."""
    path = Path(str(value).strip()).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path


def read_saved(folder: str | Path) -> dict[str, Any]:
    """The payload `Processor.save` wrote in `folder` (kind, config, hub model, state)."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no saved processor ({STATE_FILE} missing)")
    return json.loads(path.read_text())
