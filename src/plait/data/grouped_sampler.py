"""An epoch sampler that hands out rows in chunks of one group (k questions of one picture).

A VQA model encodes each distinct picture of a batch once (`plait.tasks.vqa_dedup`), so a
batch of B questions drawn as B/k pictures x k questions costs about B/k passes of the
picture encoder instead of B. `vqa.group_questions: k` turns it on for training.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Sequence

import torch
from torch.utils.data import Sampler

from plait.data.dataset import derive_seed


class GroupedEpochSampler(Sampler[int]):
    """Rows in shuffled chunks of up to `group` rows sharing one key; order from (seed, epoch).

    Each epoch, the rows of every key (e.g. every picture) are shuffled and cut into chunks
    of `group` (a key's last chunk may be shorter), the chunks are shuffled, and their rows
    follow one another. Every row comes exactly once an epoch; the order depends only on
    (seed, epoch), so a resumed run sees the same batches as an uninterrupted one.

    With `num_replicas` > 1 (DDP) the chunks are dealt out, rank r taking every
    num_replicas-th chunk from r, so the shards are disjoint and together hold every row;
    each shard is then padded with its own first rows to one fixed length (the most rows
    any shard can get), as DistributedSampler pads, so every process runs the same number
    of steps. Call `set_epoch(epoch)` before each epoch.

    Args:
        keys: one hashable key per row (rows with equal keys may share a chunk).
        group: rows a chunk (1: a plain shuffle of single rows).
        shuffle: shuffle at all (False: rows in order, chunks in order of first row).
    """

    def __init__(
        self,
        keys: Sequence[Hashable],
        group: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if group < 1:
            raise ValueError(f"group must be at least 1 (got {group})")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.group, self.shuffle, self.seed = int(group), shuffle, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        members: dict[Hashable, list[int]] = {}
        for row, key in enumerate(keys):
            members.setdefault(key, []).append(row)
        self.members = list(members.values())  # rows of each key, keys in order of first row
        self.size = len(keys)
        sizes = sorted(
            (min(self.group, len(rows) - start) for rows in self.members
             for start in range(0, len(rows), self.group)),
            reverse=True,
        )  # fmt: skip
        # the most rows one shard can be dealt: its ceil(chunks / replicas) largest chunks
        self.per_replica = sum(sizes[: math.ceil(len(sizes) / num_replicas)])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.per_replica

    def chunks(self) -> list[list[int]]:
        """This epoch's chunks, in order."""
        if not self.shuffle:
            return [rows[i : i + self.group] for rows in self.members
                    for i in range(0, len(rows), self.group)]  # fmt: skip
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        chunks = []
        for rows in self.members:
            mixed = [rows[i] for i in torch.randperm(len(rows), generator=generator).tolist()]
            chunks += [mixed[i : i + self.group] for i in range(0, len(mixed), self.group)]
        return [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]

    def __iter__(self) -> Iterator[int]:
        chunks = self.chunks()
        mine = [row for chunk in chunks[self.rank :: self.num_replicas] for row in chunk]
        if len(mine) < self.per_replica:  # DDP: the same length on every rank
            pad = mine or [row for chunk in chunks for row in chunk]  # more ranks than chunks
            mine += (pad * math.ceil(self.per_replica / len(pad)))[: self.per_replica - len(mine)]
        return iter(mine)
