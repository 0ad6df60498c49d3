"""Parameter counts of a model, trainable and frozen apart.

A frozen pretrained tower can hold most of a model's weights while none of them train, so
one total says little about what a run learned; `params` stays the total for old readers.
"""

from __future__ import annotations

from torch import nn


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """`params` (all), `params_trainable` (requires_grad) and `params_frozen` (the rest);
    a weight shared between modules is counted once."""
    trainable = frozen = 0
    for param in model.parameters():  # parameters() yields each shared tensor once
        if param.requires_grad:
            trainable += param.numel()
        else:
            frozen += param.numel()
    return {"params": trainable + frozen, "params_trainable": trainable, "params_frozen": frozen}
