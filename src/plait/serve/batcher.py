"""Micro-batching: rows of concurrent requests share one model call.

Why a small module of our own: the batching libraries that fit an asyncio server either
come with a whole serving stack (Ray Serve, TorchServe, Triton) or are thinly kept; this
is one queue and one worker task.

The rule: a batch takes every request already queued (up to `max_size` rows), and waits
up to `max_wait` for more only while more are on their way: requests the server has
received for this endpoint but not queued yet (`arriving`, counted by the service while
it reads and checks their uploads). A lone client, or the first request after a quiet
spell, is dispatched at once and never pays `max_wait`. Without such a count, a batch
waits only when the previous one held several requests. Requests are never split
and never reordered; model calls run one at a time in a worker thread, never on the
event loop. When a batch call raises, each of its requests is run alone, so one bad
request cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

# fn(requests) -> one result per request; each request is a list of rows
BatchFn = Callable[[list[list[T]]], list[R]]


@dataclass
class _Pending(Generic[T, R]):
    rows: list[T]
    future: asyncio.Future[R]
    arrived: float = field(default_factory=time.monotonic)


class MicroBatcher(Generic[T, R]):
    """Queue requests (lists of rows) and run them through `fn` in batches.

    `fn` gets the requests of one batch and returns one result per request, in order.
    `on_batch(rows)` is called with each batch's row count (metrics); `arriving()`
    says how many requests for this batcher are still being read (see the module doc).
    """

    def __init__(
        self,
        fn: BatchFn[T, R],
        executor: Executor,
        *,
        max_size: int = 32,
        max_wait_s: float = 0.005,
        on_batch: Callable[[int], None] | None = None,
        arriving: Callable[[], int] | None = None,
    ) -> None:
        self.fn = fn
        self.executor = executor
        self.max_size = max(1, max_size)
        self.max_wait_s = max(0.0, max_wait_s)
        self.on_batch = on_batch
        self.arriving = arriving
        self._queue: asyncio.Queue[_Pending[T, R]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._last_requests = 0  # requests in the previous batch: >1 means traffic
        self._running: set[asyncio.Future[R]] = set()  # futures of the batch being run

    def start(self) -> None:
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None

    def abandon(self, future: asyncio.Future[R]) -> None:
        """The caller gave up (timeout): drop the request if it has not started; a
        running one finishes (its future resolves, so its done-callbacks run after the
        model has let go of its inputs)."""
        if future not in self._running:
            future.cancel()

    def submit(self, rows: Sequence[T]) -> asyncio.Future[R]:
        """Queue one request's rows; the future resolves to its result (or its error)."""
        self.start()
        assert self._queue is not None
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(list(rows), future))
        return future

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            first = await queue.get()
            if first.future.done():  # cancelled while queued (the client timed out)
                continue
            batch, size = [first], len(first.rows)
            deadline = time.monotonic() + self.max_wait_s
            while size < self.max_size:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0 or not self._expecting_more():
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), timeout)
                    except asyncio.TimeoutError:
                        break
                if item.future.done():
                    continue
                if size + len(item.rows) > self.max_size:
                    await self._dispatch(batch, size)  # never split a request
                    batch, size = [item], len(item.rows)
                    deadline = time.monotonic() + self.max_wait_s
                    continue
                batch.append(item)
                size += len(item.rows)
            await self._dispatch(batch, size)

    def _expecting_more(self) -> bool:
        """Whether more requests are on their way: with `arriving` (requests the server
        has received for this endpoint but not queued yet), whether there are any; else
        whether the previous batch held several requests."""
        if self.arriving is not None:
            return self.arriving() > 0
        return self._last_requests > 1

    async def _dispatch(self, batch: list[_Pending[T, R]], size: int) -> None:
        self._last_requests = len(batch)
        if self.on_batch is not None:
            self.on_batch(size)
        loop = asyncio.get_running_loop()
        requests = [p.rows for p in batch]
        self._running = {p.future for p in batch}
        try:
            results: list[Any] = await loop.run_in_executor(self.executor, self.fn, requests)
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for {len(batch)} requests")
        except Exception as exc:
            if len(batch) == 1:
                results = [_Failed(exc)]
            else:
                log.warning("a batch of %d requests failed; running each alone", len(batch))
                results = []
                for rows in requests:  # isolate the request that fails
                    results.append(await loop.run_in_executor(self.executor, _one, self.fn, rows))
        self._running = set()
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, _Failed):
                pending.future.set_exception(result.error)
            else:
                pending.future.set_result(result)


@dataclass
class _Failed:
    error: BaseException


def _one(fn: BatchFn[Any, Any], rows: list[Any]) -> Any:
    try:
        return fn([rows])[0]
    except Exception as exc:
        return _Failed(exc)
