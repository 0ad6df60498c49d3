"""The captioning tests score without METEOR; their tiny GPT-2 (`tiny_gpt2`) is in
tests/conftest.py, shared with the export tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_meteor(monkeypatch: pytest.MonkeyPatch) -> None:
    """METEOR starts a Java process per call (tens of seconds on a busy machine); it is
    tested with the metrics (tests/evaluation), so these tests score without it."""
    monkeypatch.setattr("plait.evaluation.caption_metrics.java_available", lambda: False)
