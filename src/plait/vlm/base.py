"""What every large-model backend takes and returns.

A request is some media (pictures, sounds) plus a prompt; the answer is text. Backends
differ in where the model runs, never in this shape, so the cache, `plait describe`,
`plait label` and descriptions-as-a-feature work with any of them.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from plait.errors import DataError, RowProblem

MediaKind = Literal["image", "audio"]

#: media types the backends accept, by file suffix (others are refused by name)
MEDIA_TYPES: dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
}


@dataclass(frozen=True)
class Media:
    """One picture or sound: its bytes, media type, and a name for error messages."""

    data: bytes
    mime: str
    name: str

    @property
    def kind(self) -> MediaKind:
        return "audio" if self.mime.startswith("audio/") else "image"

    @classmethod
    def from_path(cls, path: str | Path) -> Media:
        """Read a file; an unknown suffix, a missing or an empty file is a `DataError`."""
        path = Path(path)
        mime = MEDIA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
        if mime is None or not mime.startswith(("image/", "audio/")):
            raise DataError(
                f"{path}: not a picture or a sound Plait can send to a large model "
                f"(known suffixes: {', '.join(sorted(MEDIA_TYPES))})"
            )
        try:
            data = path.read_bytes()
        except OSError as error:
            raise DataError(f"{path}: cannot be read ({error.strerror or error})") from error
        if not data:
            raise DataError(f"{path}: the file is empty")
        return cls(data=data, mime=mime, name=str(path))


@dataclass(frozen=True)
class VlmRequest:
    """One question to the model: media (zero or more) and the prompt text."""

    media: tuple[Media, ...]
    prompt: str
    max_new_tokens: int = 128
    temperature: float = 0.0
    #: answers the model must choose from (for labelling); None leaves the answer free
    choices: tuple[str, ...] | None = None
    #: the row this request came from, for error messages
    row: RowProblem | None = field(default=None, compare=False)


@runtime_checkable
class VlmBackend(Protocol):
    """A large model that answers requests. `identity` names model and settings exactly
    (it is part of every cache key); `modalities` says which media kinds it accepts."""

    identity: str
    modalities: frozenset[MediaKind]

    def generate(self, requests: Sequence[VlmRequest], *, progress: bool = True) -> list[str]:
        """One answer per request, in order. Raises `PlaitError` subclasses with the media
        name on failure; never returns a partial list silently."""
        ...
