"""Answers kept on disk, so asking a large model the same thing twice costs nothing.

One small JSON file per answer, `CACHE_DIR/ab/abcdef....json`, named by the sha256 of
what decides the answer: the sha256 of each media file's bytes (and its media type), the
prompt, the choices, `max_new_tokens`, `temperature` and the backend's `identity` (model
and server). Renaming or moving a file keeps its answers; changing a byte does not. Files
are written atomically, so a killed run leaves whole entries; an entry that cannot be
read is logged, asked again and rewritten. With `temperature > 0` the first sampled answer
is kept. A request repeated within one call is asked once. Deleting the folder empties
the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from plait.utils.io import atomic_write_json
from plait.utils.progress import progress_bar
from plait.vlm.base import MediaKind, VlmBackend, VlmRequest

log = logging.getLogger(__name__)

#: misses are sent to the backend this many at a time, so answers already received are
#: on disk when a later request fails, and a rerun continues from there
CHUNK = 32


def default_cache_dir() -> Path:
    """$PLAIT_VLM_CACHE, else $XDG_CACHE_HOME/plait/vlm, else ~/.cache/plait/vlm."""
    if os.environ.get("PLAIT_VLM_CACHE"):
        return Path(os.environ["PLAIT_VLM_CACHE"])
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "plait" / "vlm"


def cache_key(request: VlmRequest, identity: str) -> str:
    """The sha256 (hex) naming `request`'s answer from the backend called `identity`."""
    described = {
        "media": [[hashlib.sha256(m.data).hexdigest(), m.mime] for m in request.media],
        "prompt": request.prompt,
        "choices": list(request.choices) if request.choices is not None else None,
        "max_new_tokens": request.max_new_tokens,
        "temperature": request.temperature,
        "identity": identity,
    }
    text = json.dumps(described, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CachedBackend:
    """`backend` behind an on-disk cache in `cache_dir`; itself a `VlmBackend`."""

    def __init__(self, backend: VlmBackend, cache_dir: Path) -> None:
        self.backend = backend
        self.cache_dir = Path(cache_dir)
        self.identity: str = backend.identity
        self.modalities: frozenset[MediaKind] = backend.modalities
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"CachedBackend({self.backend!r}, cache_dir={str(self.cache_dir)!r})"

    def path_of(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def generate(self, requests: Sequence[VlmRequest], *, progress: bool = True) -> list[str]:
        """Answers from the cache where present; the rest from the backend, then stored."""
        keys = [cache_key(request, self.identity) for request in requests]
        found = {key: self._read(key) for key in dict.fromkeys(keys)}
        first_of: dict[str, int] = {}
        for index, key in enumerate(keys):
            if found[key] is None:
                first_of.setdefault(key, index)
        missing = list(first_of.values())  # one request per distinct missing answer
        cached = sum(found[key] is not None for key in keys)
        self.hits += cached
        self.misses += len(missing)
        if missing:
            log.info("%d of %d answer(s) cached; asking for %d", cached, len(keys), len(missing))
        with progress_bar(progress, "asking the model", len(missing)) as advance:
            for start in range(0, len(missing), CHUNK):
                chunk = missing[start : start + CHUNK]
                got = self.backend.generate([requests[i] for i in chunk], progress=False)
                if len(got) != len(chunk):
                    raise RuntimeError(
                        f"{self.identity} returned {len(got)} answers for {len(chunk)} requests"
                    )
                for index, answer in zip(chunk, got, strict=True):
                    self._write(keys[index], requests[index], answer)
                    found[keys[index]] = answer
                advance(len(chunk))
        return [found[key] or "" for key in keys]  # every key is filled by now

    def _read(self, key: str) -> str | None:
        path = self.path_of(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            log.warning("ignoring the unreadable cache entry %s (%s); asking again", path, error)
            return None
        answer = entry.get("answer") if isinstance(entry, dict) else None
        if not isinstance(answer, str) or entry.get("key") != key:
            log.warning("ignoring the malformed cache entry %s; asking again", path)
            return None
        return answer

    def _write(self, key: str, request: VlmRequest, answer: str) -> None:
        entry = {
            "key": key,
            "identity": self.identity,
            "media": [m.name for m in request.media],
            "prompt": request.prompt,
            "answer": answer,
        }
        atomic_write_json(self.path_of(key), entry)
