"""Pretrain, then fine-tune: start a run's towers from a saved model (`init_from: FOLDER`).

Any task whose model keeps its towers in `model.encoders` (a ModuleDict by modality name:
supervised, aligned and the models built on them) can start from any saved Plait folder.
Which tower feeds which modality:

1. the folder's tower of the same modality name, when it encodes the same kind;
2. else the folder's only tower of the same kind (`image` -> `picture`);
3. the two encoder blocks must agree (type, model, dim, layers, heads, pooling; dropout
   and freezing may differ), else the tower is left as built and the report says why.

A copied scratch text tower brings its vocabulary (the processor's fitted state), so a
token id means what it meant when the tower was trained; an embedding matrix that is one
row longer in the folder (the [MASK] row `mlm` adds) loses that row. Any other shape that
differs is an error naming the tensor, and so is a folder none of whose towers fits.
The weights are copied when the model is built, so the run's saved folder holds them
itself and never needs the folder it started from.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from plait.config import PlaitConfig
from plait.data import LabelSpace, PreparedData, restore_processor
from plait.errors import PlaitError
from plait.model_folder import WEIGHTS, check_folder, raw_config, read_task
from plait.tasks.base import Task, TaskStep

log = logging.getLogger("plait")

#: encoder keys that change neither the weights' shapes nor their meaning
TRAINING_ONLY = ("dropout", "freeze", "unfreeze_last")


@dataclass
class TowerCopy:
    """What `init_from` did for one modality of the run."""

    name: str
    source: str | None  # the folder's modality it came from, None when nothing was copied
    tensors: int = 0
    note: str = ""


def check_init_from(config: PlaitConfig) -> PlaitConfig | None:
    """The config of the folder `config.init_from` names (None without `init_from`), after
    checking it is a complete Plait model folder; raises a PlaitError naming the problem."""
    if config.init_from is None:
        return None
    folder = Path(config.init_from)
    try:
        check_folder(folder)
        task = read_task(folder)
        source = PlaitConfig.from_dict(raw_config(folder), source=str(folder / "config.yaml"))
    except PlaitError as exc:
        raise PlaitError(f"`init_from: {folder}`: {exc}") from None
    log.info("init_from: %s (a %s model)", folder, task or "saved")
    return source


def tower_names(model: nn.Module, folder: Path) -> list[str]:
    """The modality names of `model`'s towers (`model.encoders`)."""
    encoders = getattr(model, "encoders", None)
    if not isinstance(encoders, nn.ModuleDict):
        raise PlaitError(
            f"`init_from`: this task's model keeps no towers in `encoders`, so there is "
            f"nothing {folder} could start"
        )
    return list(encoders)


def initialise_towers(
    model: nn.Module, config: PlaitConfig, source: PlaitConfig, folder: Path
) -> list[TowerCopy]:
    """Copy the matching towers of the saved model in `folder` (whose config is `source`)
    into `model.encoders`; returns one `TowerCopy` per tower of `model`. Raises a
    PlaitError when no tower fits or a tensor's shape differs."""
    names = tower_names(model, folder)
    encoders = getattr(model, "encoders")  # noqa: B009  (checked by tower_names)
    with safe_open(str(folder / WEIGHTS), framework="pt") as weights:
        towers = _saved_towers(weights)
        copies = [
            _copy_tower(name, encoders[name], config, source, towers, weights, folder)
            for name in names
        ]
    _log_table(folder, copies)
    if not any(c.source for c in copies):
        reasons = "; ".join(f"`{c.name}`: {c.note}" for c in copies)
        raise PlaitError(f"`init_from: {folder}`: no tower of that model fits this run ({reasons})")
    return copies


def _saved_towers(weights: Any) -> list[str]:
    """The modality names with tower weights in an open safetensors file."""
    return sorted({k.split(".")[1] for k in weights.keys() if k.startswith("encoders.")})


def match_tower(
    name: str, config: PlaitConfig, source: PlaitConfig, towers: list[str]
) -> tuple[str | None, str]:
    """(the folder's modality that feeds `name`, or None; why not)."""
    kind = config.modalities[name].kind
    same_kind = [t for t in towers if t in source.modalities and source.modalities[t].kind == kind]
    if name in same_kind:
        found = name
    elif len(same_kind) == 1:
        found = same_kind[0]
    elif not same_kind:
        return None, f"the folder has no {kind} tower"
    else:
        return None, f"the folder has several {kind} towers ({', '.join(same_kind)}): name one"
    ours = _encoder_block(config, name)
    theirs = _encoder_block(source, found)
    if ours != theirs:
        diff = ", ".join(
            f"{key} {theirs.get(key)} there, {ours.get(key)} here"
            for key in sorted(set(ours) | set(theirs))
            if ours.get(key) != theirs.get(key)
        )
        return None, f"its encoder differs from `{found}`'s ({diff})"
    return found, ""


def _encoder_block(config: PlaitConfig, name: str) -> dict[str, Any]:
    block = config.modalities[name].encoder.model_dump(mode="json")
    return {k: v for k, v in block.items() if k not in TRAINING_ONLY}


def _copy_tower(
    name: str,
    tower: nn.Module,
    config: PlaitConfig,
    source: PlaitConfig,
    towers: list[str],
    weights: Any,
    folder: Path,
) -> TowerCopy:
    found, why = match_tower(name, config, source, towers)
    if found is None:
        return TowerCopy(name, None, note=why)
    embeddings = {f"{n}.weight" for n, m in tower.named_modules() if isinstance(m, nn.Embedding)}
    state = tower.state_dict()
    notes = []
    for key, target in state.items():
        stored = f"encoders.{found}.{key}"
        if stored not in weights.keys():
            raise PlaitError(f"`init_from: {folder}`: {WEIGHTS} has no tensor `{stored}`")
        value = weights.get_tensor(stored)
        if value.shape != target.shape:
            extra = value.shape[0] - target.shape[0]
            if key in embeddings and extra == 1 and value.shape[1:] == target.shape[1:]:
                value = value[: target.shape[0]]
                notes.append("mlm mask row dropped")
            else:
                raise PlaitError(
                    f"`init_from: {folder}`: tensor `{stored}` has shape {tuple(value.shape)}, "
                    f"this run's `{name}` tower needs {tuple(target.shape)} (for a text "
                    "tower with its own vocabulary: the vocabulary size differs)"
                )
        with torch.no_grad():
            target.copy_(value.to(target.dtype))
    return TowerCopy(name, found, len(state), "; ".join(notes))


def copy_processor_state(
    names: list[str],
    config: PlaitConfig,
    processors: Mapping[str, Any],
    source: PlaitConfig,
    folder: Path,
) -> bool:
    """Give each tower `names` that will be copied the fitted state (a scratch vocabulary)
    of the folder's processor it comes from; True when any processor changed."""
    with safe_open(str(folder / WEIGHTS), framework="pt") as weights:
        towers = _saved_towers(weights)
    changed = False
    for name in names:
        found, _ = match_tower(name, config, source, towers)
        if found is None or name not in processors:
            continue
        saved = restore_processor(source.modalities[found], folder / "processors" / found)
        state = saved.state_dict()
        if state and state != processors[name].state_dict():
            processors[name].load_state_dict(state)
            changed = True
    return changed


def _log_table(folder: Path, copies: list[TowerCopy]) -> None:
    lines = [f"init_from {folder}:", f"  {'tower':<16} {'from':<16} {'tensors':>7}  note"]
    for c in copies:
        lines.append(
            f"  {c.name:<16} {c.source or '-':<16} {c.tensors:>7}  "
            f"{c.note or ('copied' if c.source else '')}"
        )
    log.info("\n".join(lines))


class InitialisedTask:
    """A task whose `build` starts the towers from `config.init_from` (what `fit` calls;
    everything else is the wrapped task's)."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.copies: list[TowerCopy] = []

    @property
    def name(self) -> str:
        return self.task.name

    def build(
        self,
        config: PlaitConfig,
        processors: Mapping[str, Any],
        labels: LabelSpace | None,
        *,
        load_weights: bool = True,
    ) -> nn.Module:
        model = self.task.build(config, processors, labels, load_weights=load_weights)
        source = check_init_from(config)
        if source is None or config.init_from is None:
            return model
        folder = Path(config.init_from)
        if copy_processor_state(tower_names(model, folder), config, processors, source, folder):
            # a copied vocabulary changes the embedding size: build again with it
            model = self.task.build(config, processors, labels, load_weights=load_weights)
        self.copies = initialise_towers(model, config, source, folder)
        return model

    def step(self, config: PlaitConfig, data: PreparedData) -> TaskStep:
        return self.task.step(config, data)

    def baseline(
        self, model: nn.Module, config: PlaitConfig, data: PreparedData
    ) -> dict[str, Any] | None:
        return self.task.baseline(model, config, data)
