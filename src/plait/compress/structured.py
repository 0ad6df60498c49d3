"""Structured pruning with torch-pruning: whole channels go, so layers really shrink.

torch-pruning's dependency graph (DepGraph) traces the model on a real batch and groups
every channel with the layers that read it (a Linear's outputs with the next Linear's
inputs, through concatenations and residual sums), so a group is removed everywhere at
once. What must keep its width is passed as `ignored_layers`:

- the outputs: the layers that write the classes / targets (the head's last layer, a
  late fusion's per-modality output layers), an aligned model's projections (the shared
  embedding width) and its matching / masked-LM heads;
- pretrained Hugging Face towers (their attention reshapes by head count, which this
  code does not configure) and every frozen layer (fine-tuning could not repair it);
- recurrent layers (torch-pruning has no GRU pruner);
- fusion internals whose widths enter a non-linear reshape DepGraph cannot follow:
  tensor and low-rank fusion's projections feed an outer product (low-rank: through
  its factor tensors), so their widths stay.

After pruning, the model runs on real batches with every modality present and with each
one missing; a failure there means the graph was not followed, and the model is refused
with a message naming the fusion (use unstructured pruning instead).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from plait.data.batch import Batch
from plait.errors import PlaitError

log = logging.getLogger("plait")


def protected_layers(model: nn.Module, num_outputs: int | None) -> list[nn.Module]:
    """The modules whose output widths must not change (see the module docstring)."""
    from plait.encoders import HFEncoder

    protected: list[nn.Module] = []
    for module in model.modules():
        if isinstance(module, HFEncoder | nn.RNNBase):
            protected.extend(module.modules())
        elif not any(True for _ in module.children()) and any(
            not p.requires_grad for p in module.parameters(recurse=False)
        ):
            protected.append(module)  # a frozen layer (torch-pruning also ignores children)
    head = getattr(model, "head", None)
    fusion = getattr(model, "fusion", None)
    for part in (head, fusion):
        if part is not None and num_outputs is not None:
            protected += [
                m
                for m in part.modules()
                if isinstance(m, nn.Linear) and m.out_features == num_outputs
            ]
    if fusion is not None:
        protected += _fusion_interfaces(fusion)
    for name in ("projections", "matcher", "decoder"):  # an aligned model's outputs
        part = getattr(model, name, None)
        if isinstance(part, nn.Module):
            protected.extend(part.modules())
    return protected


def _fusion_interfaces(fusion: nn.Module) -> list[nn.Module]:
    """Fusion layers whose output widths enter a reshape DepGraph cannot follow."""
    from plait.fusion import LowRankFusion, TensorFusion

    if isinstance(fusion, TensorFusion | LowRankFusion):
        # widths of the outer product's factors; low-rank's factor tensors [rank, t + 1,
        # dim] read them through an einsum that DepGraph cannot map
        return list(fusion.proj)
    return []


def prune_channels(
    model: nn.Module,
    amount: float,
    example: Any,
    forward: Callable[[nn.Module, Any], Any],
    num_outputs: int | None,
    what: str,
    keep: list[nn.Module] | None = None,
) -> None:
    """Remove `amount` of the channels of every prunable group of `model`, in place
    (smallest L1 norm first, torch-pruning's MagnitudePruner).

    `example` is what `forward(model, example)` runs (one real batch); `what` names the
    model in errors ("fusion `tensor`"); `keep` are more modules whose widths stay.
    """
    import torch_pruning as tp

    ignored = protected_layers(model, num_outputs) + list(keep or [])
    model.eval()
    try:
        with warnings.catch_warnings():
            # it warns that it prunes the last dimension of bare parameters (a fusion's
            # missing-modality vectors, positions): that is their feature dimension
            warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
            pruner = tp.pruner.MagnitudePruner(
                model,
                example,
                importance=tp.importance.MagnitudeImportance(p=1),
                pruning_ratio=amount,
                ignored_layers=ignored,
                forward_fn=forward,
            )
        pruner.step()
    except (RuntimeError, IndexError, ValueError, KeyError, TypeError) as exc:
        raise _refusal(what, exc) from None


def check_pruned(
    model: nn.Module, batches: list[Batch], forward: Callable[[nn.Module, Any], Any], what: str
) -> None:
    """Run the pruned model on real batches; any failure refuses it (see module doc)."""
    with torch.inference_mode():
        for batch in batches:
            try:
                forward(model, batch)
            except (RuntimeError, IndexError, ValueError) as exc:
                raise _refusal(what, exc) from None


def _refusal(what: str, exc: BaseException) -> PlaitError:
    text = " ".join(str(exc).split())[:300]
    return PlaitError(
        f"structured pruning cannot follow the channels of this model's {what} "
        f"(torch-pruning: {type(exc).__name__}: {text}); prune it without --structured "
        "(unstructured pruning zeroes single weights and works for every model)"
    )


def missing_modality_batches(batch: Batch) -> list[Batch]:
    """`batch` as it is, and once with each modality marked missing in every row."""
    variants = [batch]
    for name in batch.presence:
        presence = dict(batch.presence)
        presence[name] = torch.zeros_like(presence[name])
        variants.append(Batch(batch.inputs, presence, batch.labels, batch.ids))
    return variants
