"""The saved-model folder shared by supervised and aligned models (no pickles)::

    config.yaml          the resolved run config
    model.safetensors    all weights, pretrained towers included
    labels.json          the label space (absent for an aligned run without labels)
    processors/<name>/   tokenizer, vocabulary or feature-extractor settings
    hub/<name>/          Hugging Face architecture config, so the model rebuilds offline
    metrics.json         test metrics at save time (when known)
    README.md            a short model card

Each predictor adds only what is its own (the model card, an aligned model's
`hub/_dual/`) and how the architecture is rebuilt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import load_model, save_model
from torch import nn

from plait.config import PlaitConfig
from plait.data import LabelSpace, restore_processor
from plait.encoders import HFEncoder
from plait.errors import PlaitError
from plait.utils.io import atomic_write_json, atomic_write_text


def save_folder(
    folder: str | Path,
    *,
    model: nn.Module,
    config: PlaitConfig,
    processors: dict[str, Any],
    labels: LabelSpace | None,
    metrics: dict[str, Any],
    card: str,
) -> Path:
    """Write the folder; `model.encoders` (a ModuleDict) provides the hub towers' configs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config.to_yaml(folder / "config.yaml")
    save_model(model, str(folder / "model.safetensors"))
    if labels is not None:
        atomic_write_json(folder / "labels.json", labels.to_dict())
    encoders = getattr(model, "encoders", {})
    for name, processor in processors.items():
        processor.save(folder / "processors" / name)
        encoder = encoders[name] if name in encoders else None
        if isinstance(encoder, HFEncoder):
            encoder.save_hub_files(folder / "hub" / name)
    if metrics:
        atomic_write_json(folder / "metrics.json", metrics)
    atomic_write_text(folder / "README.md", card)
    return folder


@dataclass
class FolderContents:
    """What a saved folder holds besides the weights (read before the model is built)."""

    config: PlaitConfig
    processors: dict[str, Any]
    labels: LabelSpace | None
    metrics: dict[str, Any]


def read_config(folder: str | Path) -> PlaitConfig:
    """The saved config, with pretrained towers pointed at the copies saved in `hub/`."""
    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        raise PlaitError(f"{folder} is not a saved Plait model (no model.safetensors)")
    path = folder / "config.yaml"
    config = PlaitConfig.from_dict(yaml.safe_load(path.read_text()), source=str(path))
    return point_hub_encoders_at(config, folder)


def read_folder(folder: str | Path, config: PlaitConfig) -> FolderContents:
    """Processors, labels and metrics of a saved folder, for `config` (from read_config)."""
    folder = Path(folder)
    labels_path = folder / "labels.json"
    labels = (
        LabelSpace.from_dict(json.loads(labels_path.read_text())) if labels_path.is_file() else None
    )
    processors = {
        name: restore_processor(modality, folder / "processors" / name)
        for name, modality in config.modalities.items()
    }
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return FolderContents(config, processors, labels, metrics)


def load_weights_into(model: nn.Module, folder: str | Path, device: str) -> nn.Module:
    load_model(model, str(Path(folder) / "model.safetensors"), device=device)
    return model.to(device)


def point_hub_encoders_at(config: PlaitConfig, folder: Path) -> PlaitConfig:
    """Rebuild pretrained towers from the copy of their config saved with the model."""
    modalities = {}
    for name, modality in config.modalities.items():
        local = folder / "hub" / name
        if modality.encoder.type == "huggingface" and local.is_dir():
            encoder = modality.encoder.model_copy(update={"model": str(local)})
            modality = modality.model_copy(update={"encoder": encoder})
        modalities[name] = modality
    return config.model_copy(update={"modalities": modalities})
