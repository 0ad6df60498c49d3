"""Unstructured pruning with `torch.nn.utils.prune`: the smallest weights become zeros.

Every trainable Linear and Conv layer loses `amount` of its weights by L1 magnitude
(`l1_unstructured`, per layer). While the model is fine-tuned the pruning masks stay on
(the zeros cannot grow back); `make_permanent` then folds each mask into its weight, so
the saved folder is a normal model folder of dense tensors. The file on disk keeps its
size (safetensors stores zeros like any value); only compression shrinks it, which the
report shows as the zipped size. Frozen layers are left alone: fine-tuning could not
repair them, and a frozen tower is held by reference in training checkpoints.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import prune

PRUNED_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def prunable_layers(model: nn.Module) -> list[nn.Module]:
    """The trainable Linear / Conv layers of `model`."""
    return [m for m in model.modules() if isinstance(m, PRUNED_TYPES) and m.weight.requires_grad]


def frozen_layer_count(model: nn.Module) -> int:
    """Linear / Conv layers left alone because their weights are frozen."""
    return sum(
        1 for m in model.modules() if isinstance(m, PRUNED_TYPES) and not m.weight.requires_grad
    )


def mask_smallest_weights(model: nn.Module, amount: float) -> list[nn.Module]:
    """Mask `amount` of each prunable layer's weights (L1); returns the masked layers."""
    layers = prunable_layers(model)
    for layer in layers:
        prune.l1_unstructured(layer, name="weight", amount=amount)
    return layers


def make_permanent(layers: list[nn.Module]) -> None:
    """Fold each mask into its weight: plain `weight` parameters with zeros again."""
    for layer in layers:
        if prune.is_pruned(layer):
            prune.remove(layer, "weight")


def zero_fraction(model: nn.Module) -> float:
    """The share of zeros among the weights of the Linear / Conv layers."""
    zeros = total = 0
    for module in model.modules():
        if isinstance(module, PRUNED_TYPES):
            zeros += int((module.weight == 0).sum())
            total += module.weight.numel()
    return zeros / total if total else 0.0
