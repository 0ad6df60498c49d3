"""Frozen pretrained weights in training checkpoints: held by reference, not by value.

A frozen hub tower (`encoder.freeze: true`, a LiT-style locked tower) never changes while
the run trains, yet Lightning would write all its weights into `last.ckpt` and
`best.ckpt` at every epoch (a frozen MiniLM is about 90 MB per file). Instead each
checkpoint records, per tower, where its frozen weights come from (the hub name or
folder), which state-dict keys they fill and a SHA-256 of their values; on resume the
tower is loaded from that source again (as `fit` builds every model) and the checksum
proves it is the same weights. The saved model folder is not concerned: it is written
from the model itself and holds every weight once, so it moves to other machines alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from plait.encoders import HFEncoder
from plait.errors import PlaitError

#: the checkpoint key listing the towers held by reference
CHECKPOINT_KEY = "plait_frozen"


@dataclass(frozen=True)
class FrozenTower:
    """The frozen weights of one hub tower, as a checkpoint refers to them.

    Attributes:
        prefix: the tower's module path in the Lightning state dict.
        source: the hub name or folder its weights were loaded from.
        keys: the state-dict keys of its frozen parameters.
        checksum: SHA-256 of those keys and values.
    """

    prefix: str
    source: str
    keys: tuple[str, ...]
    checksum: str

    def as_dict(self) -> dict[str, Any]:
        """Plain values, so `torch.load(weights_only=True)` reads it back."""
        return {
            "prefix": self.prefix,
            "source": self.source,
            "keys": list(self.keys),
            "checksum": self.checksum,
        }


def frozen_towers(module: nn.Module) -> list[FrozenTower]:
    """Every hub tower inside `module` with frozen parameters (a tower with
    `unfreeze_last` keeps its trained layers in the checkpoint, by value)."""
    towers = []
    for name, sub in module.named_modules():
        if not isinstance(sub, HFEncoder):
            continue
        state = sub.state_dict(keep_vars=True)
        frozen = {
            f"{name}.{key}": value
            for key, value in state.items()
            if isinstance(value, nn.Parameter) and not value.requires_grad
        }
        if frozen:
            source = str(getattr(sub.model, "name_or_path", "") or "")
            towers.append(FrozenTower(name, source, tuple(frozen), _checksum(frozen)))
    return towers


def drop_frozen(checkpoint: dict[str, Any], towers: list[FrozenTower]) -> None:
    """Replace the towers' weights in `checkpoint["state_dict"]` by references."""
    if not towers:
        return
    state = checkpoint["state_dict"]
    for tower in towers:
        for key in tower.keys:
            state.pop(key, None)
    checkpoint[CHECKPOINT_KEY] = [tower.as_dict() for tower in towers]


def restore_frozen(checkpoint: dict[str, Any], module: nn.Module) -> None:
    """Fill `checkpoint["state_dict"]` with the frozen weights it refers to, taken from
    `module` (built from the same sources), after checking they are the same weights.

    Raises:
        PlaitError: a source now holds other weights, or this run does not freeze a
            tower the checkpoint refers to.
    """
    references = checkpoint.get(CHECKPOINT_KEY) or []
    if not references:
        return
    current = {tower.prefix: tower for tower in frozen_towers(module)}
    own = module.state_dict()
    state = checkpoint["state_dict"]
    for reference in references:
        prefix, source = reference["prefix"], reference["source"]
        tower = current.get(prefix)
        if tower is None or set(tower.keys) != set(reference["keys"]):
            raise PlaitError(
                f"the checkpoint holds the frozen weights of '{prefix}' ({source}) by "
                "reference, but this run does not freeze the same weights there: resume "
                "with the config the run started with, or start a new run without --resume"
            )
        if tower.checksum != reference["checksum"]:
            raise PlaitError(
                f"the frozen tower '{prefix}' was trained from {source} (weights checksum "
                f"{reference['checksum'][:12]}), but {tower.source} now holds other weights "
                f"(checksum {tower.checksum[:12]}). Checkpoints keep frozen weights by "
                "reference only: put the original weights back, or start a new run "
                "without --resume"
            )
        for key in reference["keys"]:
            state[key] = own[key]


def _checksum(weights: Mapping[str, Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(weights):
        tensor = weights[key].detach().cpu()
        value = tensor.contiguous().reshape(-1)
        digest.update(f"{key} {value.dtype} {tuple(tensor.shape)}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
