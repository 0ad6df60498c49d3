"""A scripted `VlmBackend` for tests of what sits above the backends (tables, commands,
descriptions as a feature): its answer is a function of the media bytes, so it is
repeatable and differs between files, and it records every request it was sent."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from plait.vlm.base import MediaKind, VlmRequest

WORDS = ["red", "green", "blue", "round", "square", "bright", "dark", "small"]


class FakeBackend:
    identity = "fake:words"
    modalities: frozenset[MediaKind] = frozenset({"image", "audio"})

    def __init__(self) -> None:
        self.requests: list[VlmRequest] = []

    def generate(self, requests: Sequence[VlmRequest], *, progress: bool = True) -> list[str]:
        self.requests.extend(requests)
        return [self.answer(r) for r in requests]

    @staticmethod
    def answer(request: VlmRequest) -> str:
        digest = hashlib.sha256(b"".join(m.data for m in request.media)).digest()
        if request.choices is not None:
            return request.choices[digest[0] % len(request.choices)]
        return " ".join(WORDS[b % len(WORDS)] for b in digest[:3])
