"""Parameter counts split trainable and frozen, with `params` still the total."""

from __future__ import annotations

from torch import nn

from plait.utils.params import parameter_counts


def test_frozen_and_shared_weights() -> None:
    frozen = nn.Linear(4, 8)  # 40 weights
    frozen.requires_grad_(False)
    head = nn.Linear(8, 2)  # 18 weights
    model = nn.ModuleDict({"tower": frozen, "head": head, "again": head})  # shared: once
    assert parameter_counts(model) == {"params": 58, "params_trainable": 18, "params_frozen": 40}
