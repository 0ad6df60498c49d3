"""Rows of a batch that hold the very same context (one picture asked several questions).

A VQA batch often asks several questions about one picture (and `vqa.group_questions`
makes it so on purpose); the context encoder is most of a step's cost, so `VqaModel`
encodes each distinct context once and indexes the map back to its rows. Equality is
exact: the bits of every tensor of the context are compared, never a tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def row_bits(tensors: Mapping[str, Tensor]) -> Tensor:
    """Every tensor's bits, one row per sample: [B, N] int64 (floats by bit pattern, so -0.0
    and 0.0 differ and a NaN equals only the same NaN)."""
    parts = []
    for key in sorted(tensors):
        tensor = tensors[key]
        flat = tensor.reshape(tensor.shape[0], -1)  # [B, n]
        if flat.dtype == torch.bool:
            flat = flat.to(torch.uint8)
        if flat.is_floating_point() or flat.is_complex():
            flat = flat.contiguous().view(_INT_OF_SIZE[flat.element_size()])
        parts.append(flat.to(torch.int64))  # [B, n]
    return torch.cat(parts, dim=1)  # [B, N]


def distinct_rows(tensors: Mapping[str, Tensor]) -> tuple[Tensor, Tensor] | None:
    """(first, inverse): the index of the first row of each distinct context [U] and, for
    each row, which of them it is [B], such that row b equals row first[inverse[b]]. None
    when every row is distinct (nothing to save).

    A 64-bit hash of each row finds the candidates in one pass; they are then checked
    bit for bit, and a hash collision (never seen, but possible) falls back to sorting the
    rows themselves.
    """
    bits = row_bits(tensors)  # [B, N]
    rows = bits.shape[0]
    if rows < 2:
        return None
    hashes = (bits * _odd_weights(bits.shape[1]).to(bits.device)).sum(dim=1)  # [B]
    _, inverse = torch.unique(hashes, return_inverse=True)  # [B]
    if not bool((bits == bits[_first_of(inverse)[inverse]]).all()):  # a collision
        _, inverse = torch.unique(bits, dim=0, return_inverse=True)
    first = _first_of(inverse)  # [U]
    if len(first) == rows:
        return None
    return first, inverse


def _odd_weights(n: int) -> Tensor:
    """n fixed odd int64 weights: a multiplicative hash of a row (wrapping on overflow)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(-(2**62), 2**62, (n,), generator=generator) * 2 + 1  # [n]


def _first_of(inverse: Tensor) -> Tensor:
    """The lowest row of each group id 0..U-1 of `inverse` [B] -> [U]."""
    groups = int(inverse.max()) + 1
    positions = torch.arange(len(inverse), device=inverse.device)
    first = torch.full((groups,), len(inverse), dtype=torch.long, device=inverse.device)
    return first.scatter_reduce(0, inverse, positions, reduce="amin")  # [U]
