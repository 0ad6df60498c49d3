"""GroupedEpochSampler: chunks of one key, every row once an epoch, the order a function of
(seed, epoch) only, DDP shards disjoint and complete."""

from __future__ import annotations

from collections import Counter

import pytest

from plait.data.grouped_sampler import GroupedEpochSampler

# 7 scenes of 6 questions and one of 4 (its last chunk short), rows interleaved as a
# shuffled manifest might hold them
KEYS = [f"scene-{(row * 5) % 8}" for row in range(46)]


def test_every_row_once_in_chunks_of_one_key() -> None:
    sampler = GroupedEpochSampler(KEYS, group=3, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(len(KEYS))) and len(sampler) == len(KEYS)
        for chunk in sampler.chunks():
            assert len({KEYS[row] for row in chunk}) == 1 and 1 <= len(chunk) <= 3
        # the chunks' rows follow one another
        start = 0
        for chunk in sampler.chunks():
            assert order[start : start + len(chunk)] == chunk
            start += len(chunk)


def test_order_depends_only_on_seed_and_epoch() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        sampler = GroupedEpochSampler(KEYS, group=3, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(0, 2) == order(0, 2)  # a resumed run rebuilds the same order
    assert order(0, 2) != order(0, 3) and order(0, 2) != order(1, 2)
    # chunks mix differently each epoch: not always the same questions together
    sampler = GroupedEpochSampler(KEYS, 3, seed=0)
    first = {frozenset(c) for c in sampler.chunks()}
    sampler.set_epoch(1)
    assert {frozenset(c) for c in sampler.chunks()} != first


def test_group_one_and_no_shuffle() -> None:
    sampler = GroupedEpochSampler(KEYS, group=1, seed=0)
    assert sorted(sampler) == list(range(len(KEYS)))
    plain = GroupedEpochSampler(KEYS, group=6, shuffle=False)
    first = list(plain)
    assert sorted(first) == list(range(len(KEYS))) and first == list(plain)
    with pytest.raises(ValueError, match="group"):
        GroupedEpochSampler(KEYS, group=0)


@pytest.mark.parametrize("replicas", [2, 3])
def test_ddp_shards_are_disjoint_complete_and_equally_long(replicas: int) -> None:
    shards = []
    for rank in range(replicas):
        sampler = GroupedEpochSampler(KEYS, group=4, seed=5, num_replicas=replicas, rank=rank)
        sampler.set_epoch(2)
        shards.append(list(sampler))
        assert len(shards[-1]) == len(sampler)
    assert len({len(s) for s in shards}) == 1  # every process runs the same steps
    chunks = GroupedEpochSampler(KEYS, group=4, seed=5)
    chunks.set_epoch(2)
    dealt = chunks.chunks()
    for rank, shard in enumerate(shards):
        own = [row for chunk in dealt[rank::replicas] for row in chunk]
        assert shard[: len(own)] == own  # its own chunks, then padding from its start
        assert set(shard[len(own) :]) <= set(own)
    owned = [row for rank in range(replicas) for row in shards[rank]]
    counts = Counter(row for chunk in dealt for row in chunk)
    assert set(owned) == set(range(len(KEYS))) and set(counts.values()) == {1}
    heads = [set(row for c in dealt[r::replicas] for row in c) for r in range(replicas)]
    assert all(not (heads[a] & heads[b]) for a in range(replicas) for b in range(a + 1, replicas))


def test_more_replicas_than_chunks_still_gives_every_rank_a_full_shard() -> None:
    keys = ["a"] * 4
    shards = [list(GroupedEpochSampler(keys, 4, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4] and sorted(shards[0]) == [0, 1, 2, 3]
