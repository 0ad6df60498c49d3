"""Pacing helpers: the shared requests-per-minute limit, backoff with jitter, Retry-After."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from plait.vlm.rate_limit import MAX_WAIT_S, RateLimiter, backoff_delay, retry_after_s


def test_the_limiter_spaces_starts_by_the_interval() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)  # one per 0.5 s
    for _ in range(3):
        limiter.wait()
    assert slept == pytest.approx([0.5, 0.5])
    now[0] += 10  # idle for a while: the next request goes at once
    limiter.wait()
    assert len(slept) == 2
    RateLimiter(None, sleep=sleep).wait()
    assert len(slept) == 2


def test_backoff_doubles_with_bounded_jitter() -> None:
    rng = random.Random(0)
    for attempt in range(4):
        delays = [backoff_delay(attempt, 1.0, rng) for _ in range(50)]
        assert min(delays) >= 0.5 * 2**attempt and max(delays) < 1.5 * 2**attempt
        assert len(set(delays)) > 1
    assert backoff_delay(30, 1.0) == MAX_WAIT_S


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after_s("2") == 2.0
    assert retry_after_s(" 0.5 ") == 0.5
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s("99999") == MAX_WAIT_S
    when = format_datetime(datetime(2030, 1, 1, 0, 0, 10, tzinfo=timezone.utc), usegmt=True)
    start = datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()
    assert retry_after_s(when, now=lambda: start) == pytest.approx(10.0)
