"""Atomic file writes: a crash never leaves a half-written file where a good one was."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp_path)` (its return value is ignored) then rename onto `path`; the
    rename is atomic on POSIX."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; use the usual mode
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def current_umask() -> int:
    """The process's file-mode mask, read without changing it.

    `os.umask` can only read the mask by setting a new one, and the mask belongs to the
    whole process: while it is briefly 0, a data-loader thread creating a file gets a
    world-writable one. Linux reports the mask in /proc/self/status, so it is read there;
    only where that is unavailable (macOS, Windows) does this fall back to setting and
    restoring it, with that short race.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # racy fallback: set, then put the real mask back at once
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(Path(path), json.dumps(data, indent=2, sort_keys=False, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def staging_folder(target: Path) -> Path:
    """Where `atomic_write_folder` builds the new `target` (hidden, beside it)."""
    target = Path(target)
    return target.parent / f".{target.name}.staging"


def previous_folder(target: Path) -> Path:
    """Where `atomic_write_folder` moves the old `target` while it swaps the new one in."""
    target = Path(target)
    return target.parent / f".{target.name}.previous"


def atomic_write_folder(target: Path, write: Callable[[Path], object]) -> Path:
    """Build a whole folder with `write(staging)`, then swap it in for `target`.

    Whenever the process dies, `target` is either the complete old folder or the complete
    new one; the only gap is between the two renames, where the old folder sits at
    `previous_folder(target)` (and the next call puts it back before it starts). Leftover
    staging folders of a killed call are removed by the next one. `write` should mark the
    folder complete as its last step (a model folder's manifest), so a reader can tell a
    finished staging folder from a half-written one.
    """
    target = Path(target)
    staging, previous = staging_folder(target), previous_folder(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if previous.is_dir():
        if target.exists():
            shutil.rmtree(previous)  # a finished swap whose clean-up was killed
        else:
            os.replace(previous, target)  # killed between the renames: the old one goes back
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        write(staging)
        _fsync_tree(staging)
        if target.exists():
            os.replace(target, previous)
        try:
            os.replace(staging, target)
        except BaseException:
            if previous.exists() and not target.exists():
                os.replace(previous, target)
            raise
        _fsync_dir(target.parent)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if previous.exists():
        shutil.rmtree(previous, ignore_errors=True)
    return target


def _fsync_tree(folder: Path) -> None:
    """Flush every file under `folder` to disk before the rename makes them visible."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        _fsync_dir(path)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
