"""The on-disk answer cache: hits never reach the model, keys change with what decides
the answer, broken entries are asked again, and a failed batch keeps what it got."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from plait.vlm.base import Media, MediaKind, VlmBackend, VlmRequest
from plait.vlm.cache import CachedBackend, cache_key
from plait.vlm.errors import ServerFailed
from plait.vlm.openai_chat import OpenAIChatBackend

from .conftest import FakeChatServer, Reply, write_png


class CountingBackend:
    """Answers `prompt|media name`, counting requests; fails on the prompt "fail"."""

    identity = "counting:v1"
    modalities: frozenset[MediaKind] = frozenset({"image"})

    def __init__(self) -> None:
        self.asked: list[VlmRequest] = []

    def generate(self, requests: Sequence[VlmRequest], *, progress: bool = True) -> list[str]:
        if any(r.prompt == "fail" for r in requests):
            raise ServerFailed("the model failed")
        self.asked += requests
        return [f"{r.prompt}|{r.media[0].name}" for r in requests]


def picture(name: str = "a.png", data: bytes = b"\x89PNG one") -> Media:
    return Media(data=data, mime="image/png", name=name)


def request(prompt: str = "describe", media: Media | None = None, **fields: object) -> VlmRequest:
    return VlmRequest(media=(media or picture(),), prompt=prompt, **fields)  # type: ignore[arg-type]


def test_a_second_call_is_answered_from_disk(tmp_path: Path) -> None:
    model = CountingBackend()
    cached = CachedBackend(model, tmp_path / "cache")
    assert isinstance(cached, VlmBackend) and cached.identity == model.identity
    batch = [request("one"), request("two"), request("one")]
    first = cached.generate(batch)
    assert first == ["one|a.png", "two|a.png", "one|a.png"]
    assert [r.prompt for r in model.asked] == ["one", "two"]  # the repeat asked once
    again = CachedBackend(model, tmp_path / "cache").generate(batch + [request("three")])
    assert again == first + ["three|a.png"]
    assert [r.prompt for r in model.asked[2:]] == ["three"]


def test_the_key_follows_content_not_file_names() -> None:
    base = cache_key(request(), "m")
    assert cache_key(request(media=picture(name="renamed.png")), "m") == base
    changed = [
        cache_key(request(media=picture(data=b"\x89PNG two")), "m"),
        cache_key(request("other prompt"), "m"),
        cache_key(request(choices=("cat", "dog")), "m"),
        cache_key(request(choices=("dog", "cat")), "m"),
        cache_key(request(max_new_tokens=5), "m"),
        cache_key(request(temperature=0.7), "m"),
        cache_key(request(), "other model"),
    ]
    assert len({base, *changed}) == len(changed) + 1


@pytest.mark.parametrize(
    "broken", ["{not json", '{"answer": 3}', '["a list"]', "", '{"answer": "x", "key": "other"}']
)
def test_a_broken_entry_is_asked_again_and_rewritten(tmp_path: Path, broken: str) -> None:
    model = CountingBackend()
    cached = CachedBackend(model, tmp_path)
    cached.generate([request()])
    entry = cached.path_of(cache_key(request(), model.identity))
    entry.write_text(broken)
    assert cached.generate([request()]) == ["describe|a.png"]
    assert len(model.asked) == 2
    assert CachedBackend(model, tmp_path).generate([request()]) == ["describe|a.png"]
    assert len(model.asked) == 2  # the rewritten entry is read back


def test_answers_before_a_failure_stay_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("plait.vlm.cache.CHUNK", 2)
    model = CountingBackend()
    batch = [request("one"), request("two"), request("fail"), request("four")]
    with pytest.raises(ServerFailed):
        CachedBackend(model, tmp_path).generate(batch)
    model.asked.clear()
    CachedBackend(model, tmp_path).generate(batch[:2])
    assert model.asked == []


def test_cached_requests_never_reach_the_server(fake_chat: FakeChatServer, tmp_path: Path) -> None:
    fake_chat.script = lambda i, body: Reply(
        body={"choices": [{"message": {"content": f"answer {i}"}}]}
    )
    client = OpenAIChatBackend(fake_chat.base_url, "fake-model", api_key_env=None)
    media = Media.from_path(write_png(tmp_path / "cat.png"))
    batch = [VlmRequest(media=(media,), prompt=p) for p in ("a", "b")]
    first = CachedBackend(client, tmp_path / "cache").generate(batch)
    assert sorted(first) == ["answer 0", "answer 1"] and len(fake_chat.bodies) == 2
    assert CachedBackend(client, tmp_path / "cache").generate(batch) == first
    assert len(fake_chat.bodies) == 2
