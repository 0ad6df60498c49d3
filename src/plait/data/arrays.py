"""Array cells: a manifest cell that names one row of a NumPy array file.

A cell such as ``image_train.npy#17`` means "row 17 (0-based) of the array that
``np.save`` wrote to ``image_train.npy``", the path relative to the manifest's folder like
any other file. Datasets that ship as big arrays (AV-MNIST, precomputed spectrograms or
embeddings) then need no per-sample files.

Each array file is opened once per process with ``np.load(path, mmap_mode="r",
allow_pickle=False)`` and kept in a small cache keyed by its absolute path, so reading a
row is a cheap memory-map slice. The cache notices a rewritten file (its size, mtime or
inode changed) and reopens it, and a forked data-loader worker starts its own cache
rather than reusing the parent's handles. Object (pickled) arrays are refused.

Every problem (missing file, not an .npy file, row out of range or not an integer, a NaN
or infinite value in a float row) is a `ValueError` with a reason a user can act on; the
data layer turns it into a `RowProblem` naming the file, row and column.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from plait.data.processor_base import resolve_path

#: ``<path ending in .npy>#<row>``; the row part is checked separately for a clear error.
ARRAY_CELL = re.compile(r"^\s*(?P<path>.+?\.npy)\s*#(?P<row>[^#]*)$", re.IGNORECASE)

#: Array files kept open per process (least recently used ones are dropped first).
CACHE_SIZE = 64

_cache: OrderedDict[str, tuple[tuple[int, int, int], np.ndarray]] = OrderedDict()
_cache_pid = os.getpid()
_lock = threading.Lock()


def is_array_cell(value: Any) -> bool:
    """True for a string of the form ``path.npy#row``."""
    return isinstance(value, str) and ARRAY_CELL.match(value) is not None


def parse_array_cell(value: str) -> tuple[str, int]:
    """``"a/b.npy#17"`` -> ``("a/b.npy", 17)``.

    Raises:
        ValueError: not an array cell, or the row is not a non-negative integer.
    """
    match = ARRAY_CELL.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not an array cell (expected `file.npy#row`): {value!r}")
    path, row_text = match.group("path"), match.group("row").strip()
    if not re.fullmatch(r"\d+", row_text):
        raise ValueError(
            f"array cell {value!r}: the row after '#' must be a non-negative integer, "
            f"got {row_text!r}"
        )
    return path, int(row_text)


def open_array(path: str | Path) -> np.ndarray:
    """The whole array saved in `path`, memory-mapped read-only and cached per process.

    Raises:
        ValueError: the file is missing or is not a readable, pickle-free .npy file.
    """
    global _cache_pid
    path = Path(path)
    key = os.path.abspath(path)  # no symlink resolution: no extra system calls per row
    try:
        stat = os.stat(key)
    except FileNotFoundError:
        raise ValueError(f"array file not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read array file {path}: {exc}") from None
    signature = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _lock:
        if _cache_pid != os.getpid():  # a forked worker: open its own maps
            _cache.clear()
            _cache_pid = os.getpid()
        cached = _cache.get(key)
        if cached is not None and cached[0] == signature:
            _cache.move_to_end(key)
            return cached[1]
    array = _load(path, key)
    with _lock:
        _cache[key] = (signature, array)
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return array


def _load(path: Path, key: str) -> np.ndarray:
    if not os.path.isfile(key):
        raise ValueError(f"array file not found: {path}")
    try:
        array = np.load(key, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle; bad headers
        raise ValueError(
            f"cannot read array file {path} (a plain np.save .npy file): {exc}"
        ) from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read array file {path}: {exc}") from None
    if not isinstance(array, np.ndarray):  # np.load gives an NpzFile for .npz content
        raise ValueError(f"array file {path} holds an archive, not one array saved by np.save")
    if array.ndim == 0:
        raise ValueError(f"array file {path} holds a single value, not rows")
    return array


def load_array_cell(value: str, base_dir: Path) -> np.ndarray:
    """Read the row an array cell names (path relative to `base_dir`), as a fresh array.

    Raises:
        ValueError: malformed cell, missing or unreadable file, row out of range.
    """
    relative, row = parse_array_cell(value)
    path = resolve_path(relative, base_dir)
    array = open_array(path)
    if row >= array.shape[0]:
        raise ValueError(
            f"array cell {value.strip()!r}: row {row} is out of range, {path} has "
            f"{array.shape[0]} rows (0 to {array.shape[0] - 1})"
        )
    values = np.array(array[row])  # copy out of the memory map
    check_finite_cell(values, value)
    return values


def check_finite_cell(values: np.ndarray, cell: str) -> None:
    """Refuse a float row holding NaN or infinite values, naming the first one's index:
    one such value turns every loss and gradient it touches into NaN."""
    if not (
        np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.complexfloating)
    ):
        return
    finite = np.isfinite(values)
    if finite.all():
        return
    index = tuple(int(i) for i in np.unravel_index(int(np.argmin(finite)), values.shape))
    raise ValueError(
        f"array cell {cell.strip()!r}: the row holds NaN or infinite values (first: "
        f"{values[index]} at index {index if len(index) != 1 else index[0]})"
    )


def clear_cache() -> None:
    """Forget every open array file (tests; after rewriting files in place)."""
    with _lock:
        _cache.clear()
