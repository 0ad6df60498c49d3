"""Tensor helpers of the alignment objectives: the text tokens masked language modelling
needs, rows of an encoder output, and DDP gathers.

Under DDP the embeddings (with their gradients) and row fingerprints of every process are
gathered, so each process scores its rows against the whole global batch: the negatives
grow with the number of processes, as in CLIP. The objective that runs an aligned model
through these is the alignment task's (`plait.tasks.alignment_objective`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from plait.encoders.base import EncoderOutput


@dataclass
class TextTokens:
    """What masked language modelling needs to know about the text modality's tokens."""

    name: str  # the text modality
    mask_id: int
    vocab_size: int  # ids drawn for the 10% random replacements are below this
    special_ids: list[int]


def select(output: EncoderOutput, index: Tensor) -> EncoderOutput:
    """The rows `index` of an encoder output (rows may repeat)."""
    return EncoderOutput(output.sequence[index], output.pooled[index], output.mask[index])


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate `tensor` [n_r, ...] from every process, keeping gradients for the local
    slice (torch.distributed.nn's all_gather sums the gradients back); rows may differ in
    number between processes. One process: the tensor itself."""
    if _world() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    sizes, padded = _pad_for_gather(tensor)
    parts = all_gather(padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])


def gather(tensor: Tensor) -> Tensor:
    """As `gather_with_grad`, for values that need no gradient (fingerprints)."""
    if _world() == 1:
        return tensor
    sizes, padded = _pad_for_gather(tensor)
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])


def _pad_for_gather(tensor: Tensor) -> tuple[list[int], Tensor]:
    size = torch.tensor([len(tensor)], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(_world())]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    if len(tensor) == longest:
        return counts, tensor
    pad = tensor.new_zeros((longest - len(tensor), *tensor.shape[1:]))
    return counts, torch.cat([tensor, pad])
