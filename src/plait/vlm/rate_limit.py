"""Pacing and waiting between HTTP requests: a requests-per-minute limit shared by all
worker threads, exponential backoff with jitter, and the server's Retry-After header."""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable

#: never wait longer than this for one retry, whatever the server's Retry-After says
MAX_WAIT_S = 120.0


class RateLimiter:
    """Spaces request starts at least `60 / requests_per_minute` seconds apart, across
    threads; `None` means no limit. Retries count as requests (the server counts them)."""

    def __init__(
        self,
        requests_per_minute: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive, got {requests_per_minute}")
        self.interval = 0.0 if requests_per_minute is None else 60.0 / requests_per_minute
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until this caller may start a request."""
        if self.interval == 0.0:
            return
        with self._lock:  # reserve a start time; sleep outside the lock
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


def backoff_delay(attempt: int, base_s: float, rng: random.Random | None = None) -> float:
    """Seconds before retry number `attempt` (0-based): `base_s * 2**attempt`, scaled by a
    random factor in [0.5, 1.5) so parallel workers do not retry in lockstep."""
    jitter = (rng or random).random() + 0.5
    return min(base_s * (2.0**attempt) * jitter, MAX_WAIT_S)


def retry_after_s(header: str | None, now: Callable[[], float] = time.time) -> float | None:
    """The wait a `Retry-After` header asks for (seconds or an HTTP date), capped at
    `MAX_WAIT_S`; None when absent or unreadable."""
    if not header:
        return None
    header = header.strip()
    try:
        seconds = float(header)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - now()
    return min(max(seconds, 0.0), MAX_WAIT_S)
