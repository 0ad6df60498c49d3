"""MicroBatcher: order, max size, max wait, idle dispatch, failure isolation."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from plait.serve.batcher import MicroBatcher


def _run(coro):
    return asyncio.run(coro)


class Recorder:
    """A batch function that records each batch's requests and threads."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.batches: list[list[list[str]]] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.fail_on = fail_on

    def __call__(self, requests: list[list[str]]) -> list[list[str]]:
        self.batches.append(requests)
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if self.fail_on is not None and any(self.fail_on in rows for rows in requests):
            raise ValueError(f"cannot do {self.fail_on}")
        return [[r.upper() for r in rows] for rows in requests]


def _batcher(fn, **kwargs) -> MicroBatcher:
    return MicroBatcher(fn, ThreadPoolExecutor(1, thread_name_prefix="model"), **kwargs)


def test_results_come_back_to_their_own_request_in_order():
    async def main():
        fn = Recorder(delay=0.05)
        batcher = _batcher(fn, max_size=64, max_wait_s=0.02)
        futures = [batcher.submit([f"r{i}a", f"r{i}b"]) for i in range(10)]
        results = await asyncio.gather(*futures)
        await batcher.stop()
        return fn, results

    fn, results = _run(main())
    assert results == [[f"R{i}A", f"R{i}B"] for i in range(10)]
    flat = [rows for batch in fn.batches for rows in batch]
    assert flat == [[f"r{i}a", f"r{i}b"] for i in range(10)]  # never reordered
    assert len(fn.batches) < 10  # and batched
    assert fn.threads == {"model_0"}  # the model runs off the event loop


def test_batches_never_exceed_max_size_nor_split_a_request():
    async def main():
        fn = Recorder(delay=0.01)
        batcher = _batcher(fn, max_size=5, max_wait_s=0.05)
        futures = [batcher.submit(["a", "b"]) for _ in range(9)]
        await asyncio.gather(*futures)
        await batcher.stop()
        return fn

    fn = _run(main())
    sizes = [sum(len(rows) for rows in batch) for batch in fn.batches]
    assert max(sizes) <= 5 and sum(sizes) == 18
    assert all(len(rows) == 2 for batch in fn.batches for rows in batch)


def test_a_lone_request_on_an_idle_queue_is_not_delayed():
    async def main():
        batcher = _batcher(Recorder(), max_size=32, max_wait_s=1.0)
        await batcher.submit(["warm"])  # first call ever
        elapsed = 0.0
        for _ in range(3):  # one client, one request after another
            start = time.perf_counter()
            await batcher.submit(["x"])
            elapsed = max(elapsed, time.perf_counter() - start)
        await batcher.stop()
        return elapsed

    assert _run(main()) < 0.5  # far below max_wait = 1 s


def test_under_traffic_a_batch_waits_at_most_max_wait():
    async def main():
        fn = Recorder()
        batcher = _batcher(fn, max_size=100, max_wait_s=0.2)
        await asyncio.gather(batcher.submit(["a"]), batcher.submit(["a2"]))  # traffic
        start = time.perf_counter()
        first = batcher.submit(["b"])
        await asyncio.sleep(0.05)
        second = batcher.submit(["c"])  # arrives within the wait: same batch
        await asyncio.gather(first, second)
        elapsed = time.perf_counter() - start
        await batcher.stop()
        return fn, elapsed

    fn, elapsed = _run(main())
    assert fn.batches[-1] == [["b"], ["c"]]
    assert 0.15 <= elapsed < 0.6


def test_one_failing_request_does_not_fail_the_others():
    async def main():
        fn = Recorder(delay=0.02, fail_on="bad")
        batcher = _batcher(fn, max_size=64, max_wait_s=0.05)
        futures = [batcher.submit([name]) for name in ("a", "bad", "c")]
        results = await asyncio.gather(*futures, return_exceptions=True)
        await batcher.stop()
        return results

    a, bad, c = _run(main())
    assert a == ["A"] and c == ["C"]
    assert isinstance(bad, ValueError) and "bad" in str(bad)


def test_a_cancelled_request_is_dropped_before_it_runs():
    async def main():
        fn = Recorder(delay=0.1)
        batcher = _batcher(fn, max_size=1, max_wait_s=0.0)
        first = batcher.submit(["first"])
        doomed = batcher.submit(["doomed"])
        doomed.cancel()
        await first
        await asyncio.sleep(0.15)
        await batcher.stop()
        return fn

    fn = _run(main())
    assert ["doomed"] not in [rows for batch in fn.batches for rows in batch]


@pytest.mark.parametrize("size", [1])
def test_max_size_one_means_no_batching(size):
    async def main():
        fn = Recorder(delay=0.01)
        batcher = _batcher(fn, max_size=size, max_wait_s=0.05)
        await asyncio.gather(*[batcher.submit([str(i)]) for i in range(4)])
        await batcher.stop()
        return fn

    assert all(len(batch) == 1 for batch in _run(main()).batches)


def test_abandon_drops_a_queued_request_but_lets_a_running_one_finish():
    async def main():
        fn = Recorder(delay=0.2)
        batcher = _batcher(fn, max_size=1, max_wait_s=0.0)
        running = batcher.submit(["running"])
        queued = batcher.submit(["queued"])
        await asyncio.sleep(0.05)  # `running` is inside the model call now
        batcher.abandon(running)
        batcher.abandon(queued)
        result = await running
        await asyncio.sleep(0.3)
        await batcher.stop()
        return fn, result, queued

    fn, result, queued = _run(main())
    assert result == ["RUNNING"] and queued.cancelled()
    assert [rows for batch in fn.batches for rows in batch] == [["running"]]


def test_a_batch_waits_for_requests_still_arriving_and_only_for_them():
    async def main():
        arriving = {"n": 0}
        fn = Recorder()
        batcher = _batcher(fn, max_size=100, max_wait_s=0.3, arriving=lambda: arriving["n"])
        await asyncio.gather(batcher.submit(["w1"]), batcher.submit(["w2"]))  # warm
        start = time.perf_counter()
        await batcher.submit(["alone"])  # nothing arriving: at once
        alone = time.perf_counter() - start
        arriving["n"] = 1  # one more request is being read
        first = batcher.submit(["first"])
        await asyncio.sleep(0.1)
        arriving["n"] = 0
        second = batcher.submit(["second"])
        await asyncio.gather(first, second)
        await batcher.stop()
        return fn, alone

    fn, alone = _run(main())
    assert alone < 0.2  # far below max_wait = 0.3 s
    assert fn.batches[-1] == [["first"], ["second"]]
