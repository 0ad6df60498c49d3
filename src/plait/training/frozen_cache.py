"""A cache of frozen-tower outputs during training: each distinct input row is encoded once.

A fully frozen hub tower (`encoder.freeze: true`, no `unfreeze_last`) runs in eval mode
without autograd, so it maps the same input row to the same outputs at every epoch;
re-encoding it each step is most of a LiT-style run's time. While `fit` trains (training
and validation steps), such a tower's `forward` looks each row up by content: a BLAKE2 hash
of its input tensors, trimmed to the row's real length (`attention_mask`), so the key is
right across shuffles, splits and batch padding. A row's pooled vector and its sequence and
mask (trimmed to the last real position) are kept on the CPU; a batch whose rows are all
known skips the tower, a mixed batch encodes only the missing rows and the outputs are put
back in row order, the sequences padded with zeros (mask False) to the batch's longest.

Used only when exact (`cacheable`): every tower weight frozen, the tower held in eval mode
(checked again at every call), and no random input for that modality (image / audio
`augment`, the alignment `mlm` / `mrm` objectives, which re-encode randomly masked
inputs). Otherwise the tower runs as before and one log line says why. `training.cache_frozen`
(`auto`, `true`, `false`) switches it; `training.cache_frozen_mib` caps the memory: beyond
it no row is added (logged once) and the rest are encoded every time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from plait.config import PlaitConfig
from plait.encoders.base import EncoderOutput
from plait.encoders.hub import HFEncoder

log = logging.getLogger("plait")


@dataclass
class CachedRow:
    """One row's tower outputs, on the CPU: pooled [D], sequence [L, D], mask [L]."""

    pooled: Tensor
    sequence: Tensor
    mask: Tensor

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.pooled, self.sequence, self.mask))


class FrozenOutputCache:
    """Content-keyed outputs of one frozen tower, with a memory cap in bytes."""

    def __init__(self, name: str, cap_bytes: int) -> None:
        self.name = name
        self.cap_bytes = cap_bytes
        self.rows: dict[bytes, CachedRow] = {}
        self.nbytes = 0
        self.full = False
        self.hits = 0
        self.misses = 0

    def add(self, key: bytes, row: CachedRow) -> None:
        if self.full or key in self.rows:
            return
        if self.nbytes + row.nbytes > self.cap_bytes:
            self.full = True
            log.info(
                "frozen-tower cache of '%s' is full (%d rows, %.1f MiB; "
                "training.cache_frozen_mib): further rows are encoded every time",
                self.name, len(self.rows), self.nbytes / 2**20,
            )  # fmt: skip
            return
        self.rows[key] = row
        self.nbytes += row.nbytes


def row_keys(inputs: dict[str, Any]) -> list[bytes]:
    """One content hash per row of the tower's inputs, each tensor trimmed to the row's
    real length (through the last True of `attention_mask`) when it has that time axis."""
    tensors = {k: v.detach().cpu() for k, v in sorted(inputs.items()) if isinstance(v, Tensor)}
    others = repr(sorted((k, repr(v)) for k, v in inputs.items() if not isinstance(v, Tensor)))
    batch = len(next(iter(tensors.values())))
    mask = tensors.get("attention_mask")
    lengths = _lengths(mask.bool()) if mask is not None and mask.dim() == 2 else None
    keys = []
    for i in range(batch):
        digest = hashlib.blake2b(others.encode(), digest_size=20)
        for key, value in tensors.items():
            row = value[i]
            if lengths is not None and mask is not None and value.dim() >= 2:
                if value.shape[1] == mask.shape[1]:
                    row = row[: lengths[i]]
            row = row.contiguous()
            digest.update(f"{key} {row.dtype} {tuple(row.shape)}".encode())
            digest.update(row.reshape(-1).view(torch.uint8).numpy().tobytes())
        keys.append(digest.digest())
    return keys


def _lengths(mask: Tensor) -> list[int]:
    """[B, T] bool -> each row's length through its last True position (at least 1)."""
    steps = torch.arange(1, mask.shape[1] + 1).expand_as(mask)
    return [max(1, int(n)) for n in (steps * mask).amax(1)]


def _rows_of(output: EncoderOutput) -> list[CachedRow]:
    lengths = _lengths(output.mask.detach().cpu())
    pooled, sequence, mask = (
        t.detach().cpu() for t in (output.pooled, output.sequence, output.mask)
    )
    return [
        CachedRow(pooled[i].clone(), sequence[i, :n].clone(), mask[i, :n].clone())
        for i, n in enumerate(lengths)
    ]


def _assemble(rows: list[CachedRow], device: torch.device) -> EncoderOutput:
    """Rows back into one batch, sequences padded with zeros (mask False) to the longest."""
    longest = max(len(r.sequence) for r in rows)
    first = rows[0]
    sequence = first.sequence.new_zeros((len(rows), longest, first.sequence.shape[-1]))
    mask = first.mask.new_zeros((len(rows), longest))
    for i, row in enumerate(rows):
        sequence[i, : len(row.sequence)] = row.sequence
        mask[i, : len(row.mask)] = row.mask
    pooled = torch.stack([r.pooled for r in rows])
    return EncoderOutput(sequence.to(device), pooled.to(device), mask.to(device))


def cached_forward(
    tower: HFEncoder, forward: Callable[..., EncoderOutput], cache: FrozenOutputCache
) -> Callable[..., EncoderOutput]:
    """`forward` that answers known rows from `cache` and encodes only the others."""

    def run(**inputs: Any) -> EncoderOutput:
        tensors = [v for v in inputs.values() if isinstance(v, Tensor)]
        exact = not tower.model.training and not any(p.requires_grad for p in tower.parameters())
        if not tensors or not len(tensors[0]) or not exact:
            return forward(**inputs)  # no rows, or not exact now: run the tower as it is
        keys = row_keys(inputs)
        missing: list[int] = []  # the first row of each unknown key (a repeat is encoded once)
        unknown: set[bytes] = set()
        for i, key in enumerate(keys):
            if key not in cache.rows and key not in unknown:
                unknown.add(key)
                missing.append(i)
        cache.hits += len(keys) - len(missing)
        cache.misses += len(missing)
        fresh: dict[bytes, CachedRow] = {}
        if missing:
            index = torch.tensor(missing, device=tensors[0].device)
            subset = {
                k: v.index_select(0, index) if isinstance(v, Tensor) else v
                for k, v in inputs.items()
            }
            for i, row in zip(missing, _rows_of(forward(**subset)), strict=True):
                fresh[keys[i]] = row
                cache.add(keys[i], row)
        rows = [fresh[key] if key in fresh else cache.rows[key] for key in keys]
        return _assemble(rows, tensors[0].device)

    return run


def uncacheable_reason(name: str, tower: nn.Module, config: PlaitConfig) -> str | None:
    """Why the outputs of modality `name`'s tower cannot be cached exactly, or None."""
    if not isinstance(tower, HFEncoder) or not tower.fully_frozen:
        return "its weights train (not a `freeze: true` hub tower without `unfreeze_last`)"
    if any(p.requires_grad for p in tower.parameters()):
        return "some of its weights train"
    modality = config.modalities.get(name)
    if modality is not None and modality.kind == "image" and modality.augment:
        return "its images are augmented in training (`augment`)"
    if modality is not None and modality.kind == "audio" and modality.transforms:
        return "its audio is augmented in training (`augment`)"
    alignment = config.alignment
    if alignment is not None and modality is not None:
        names = {objective.name for objective in alignment.objectives}
        if "mlm" in names and modality.kind == "text":
            return "the mlm objective re-encodes randomly masked text"
        if "mrm" in names and modality.kind != "text":
            return "the mrm objective re-encodes randomly masked regions"
    return None


@contextmanager
def frozen_output_caches(
    model: nn.Module, config: PlaitConfig
) -> Iterator[list[FrozenOutputCache]]:
    """Cache the outputs of `model`'s frozen towers while the block runs (see the module
    docstring); the towers' own `forward` is put back at the end, so the trained model
    carries no cache. Yields the caches in use (empty when none)."""
    setting = config.training.cache_frozen
    encoders = getattr(model, "encoders", None)
    caches: list[FrozenOutputCache] = []
    patched: list[nn.Module] = []
    if setting is False or not isinstance(encoders, nn.ModuleDict):
        yield caches
        return
    cap = int(config.training.cache_frozen_mib * 2**20)
    try:
        for name, tower in encoders.items():
            reason = uncacheable_reason(name, tower, config)
            if reason is not None:
                if any(not p.requires_grad for p in tower.parameters()):  # the user froze it
                    level = logging.WARNING if setting is True else logging.INFO
                    log.log(level, "frozen-tower cache: '%s' is not cached: %s", name, reason)
                continue
            assert isinstance(tower, HFEncoder)
            cache = FrozenOutputCache(name, cap)
            tower.forward = cached_forward(tower, tower.forward, cache)  # type: ignore[method-assign]
            patched.append(tower)
            caches.append(cache)
            log.info(
                "frozen-tower cache: '%s' outputs are computed once per distinct row "
                "(up to %d MiB; training.cache_frozen)",
                name, config.training.cache_frozen_mib,
            )  # fmt: skip
        yield caches
    finally:
        for tower in patched:
            del tower.forward  # back to the class's own forward
        for cache in caches:
            if cache.hits + cache.misses:
                log.info(
                    "frozen-tower cache of '%s': %d rows (%.1f MiB), %d hits, %d encoded",
                    cache.name, len(cache.rows), cache.nbytes / 2**20, cache.hits, cache.misses,
                )  # fmt: skip
