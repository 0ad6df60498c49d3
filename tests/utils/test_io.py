"""The atomic writer reads the file-mode mask without ever changing it."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plait.retrieval.index import EmbeddingIndex
from plait.utils.io import atomic_write_text, current_umask


def _real_mask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_the_mask_is_read_without_setting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _real_mask()

    def forbidden(mask: int) -> int:
        raise AssertionError("os.umask changes the mask of every thread of the process")

    monkeypatch.setattr(os, "umask", forbidden)
    assert current_umask() == real


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_atomic_writes_never_touch_the_process_mask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _real_mask()
    monkeypatch.setattr(os, "umask", lambda mask: pytest.fail("os.umask was called"))
    atomic_write_text(tmp_path / "a.txt", "hi")
    index = EmbeddingIndex.build(np.eye(3, dtype=np.float32), ["a", "b", "c"])
    index.save(tmp_path / "idx")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~real
    assert stat.S_IMODE((tmp_path / "idx").stat().st_mode) == 0o777 & ~real


def test_the_fallback_restores_the_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _real_mask()
    monkeypatch.setattr("builtins.open", _no_proc(open))
    assert current_umask() == real
    assert _real_mask() == real


def _no_proc(real_open):  # type: ignore[no-untyped-def]
    def fake(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).startswith("/proc"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    return fake


def test_a_failed_index_save_keeps_the_old_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "idx"
    EmbeddingIndex.build(np.eye(3, dtype=np.float32), ["a", "b", "c"]).save(target)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        EmbeddingIndex.build(np.eye(4, dtype=np.float32), list("wxyz")).save(target)
    assert EmbeddingIndex.load(target).ids == ["a", "b", "c"]
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]  # no staging folder left
