"""The OpenAI-compatible client against the scripted fake server: what it sends, how it
retries, paces and fails, and that the API key never leaks."""

from __future__ import annotations

import base64
import io
import logging
import socket
import time
import traceback
from pathlib import Path

import pytest

from plait.errors import ConfigError
from plait.vlm.base import Media, VlmBackend, VlmRequest
from plait.vlm.choices import NO_CHOICE
from plait.vlm.errors import (
    AuthenticationFailed,
    EndpointTimeout,
    EndpointUnreachable,
    MalformedReply,
    RequestRejected,
    ServerFailed,
    UnknownModel,
    UnsupportedMedia,
)
from plait.vlm.openai_chat import OpenAIChatBackend

from .conftest import FakeChatServer, Reply, completion, write_png, write_sound

KEY = "sk-test-Secret-0123456789abcdef"


def backend(server: FakeChatServer, **options: object) -> OpenAIChatBackend:
    settings: dict = {"api_key_env": None, "backoff_s": 0.01, "timeout_s": 5.0, **options}
    return OpenAIChatBackend(server.base_url, "fake-model", **settings)


def ask(path: Path, prompt: str = "describe this picture", **fields: object) -> VlmRequest:
    return VlmRequest(media=(Media.from_path(path),), prompt=prompt, **fields)  # type: ignore[arg-type]


def test_sends_a_picture_as_a_data_url_and_returns_the_reply(
    fake_chat: FakeChatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAIT_TEST_KEY", KEY)
    picture = write_png(tmp_path / "cat.png")
    fake_chat.script = lambda i, body: Reply(body=completion("  a red square \n"))
    client = backend(fake_chat, api_key_env="PLAIT_TEST_KEY")
    assert isinstance(client, VlmBackend)
    request = ask(picture, max_new_tokens=7, temperature=0.5)
    assert client.generate([request]) == ["a red square"]

    body, headers = fake_chat.bodies[0], fake_chat.headers[0]
    assert headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "fake-model"
    assert (body["max_tokens"], body["temperature"]) == (7, 0.5)
    image, text = body["messages"][0]["content"]
    assert text == {"type": "text", "text": "describe this picture"}
    prefix = "data:image/png;base64,"
    assert image["type"] == "image_url" and image["image_url"]["url"].startswith(prefix)
    assert base64.b64decode(image["image_url"]["url"][len(prefix) :]) == picture.read_bytes()


def test_answers_come_back_in_request_order_with_concurrency_capped(
    fake_chat: FakeChatServer, tmp_path: Path
) -> None:
    picture = write_png(tmp_path / "p.png")
    slow = {0: 0.3, 1: 0.05}  # the first requests answer last
    fake_chat.script = lambda i, body: Reply(
        body=completion(body["messages"][0]["content"][-1]["text"]), delay_s=slow.get(i, 0.1)
    )
    prompts = [f"question {n}" for n in range(9)]
    answers = backend(fake_chat, concurrency=3).generate([ask(picture, p) for p in prompts])
    assert answers == prompts
    assert fake_chat.max_in_flight == 3


def test_requests_per_minute_spaces_the_starts(fake_chat: FakeChatServer, tmp_path: Path) -> None:
    picture = write_png(tmp_path / "p.png")
    client = backend(fake_chat, concurrency=4, requests_per_minute=300)  # one per 0.2 s
    start = time.monotonic()
    client.generate([ask(picture, f"q{n}") for n in range(4)])
    assert time.monotonic() - start >= 0.6  # the 4th start waits 3 intervals
    assert len(fake_chat.bodies) == 4
    unpaced = backend(fake_chat, concurrency=4)
    start = time.monotonic()
    unpaced.generate([ask(picture, f"q{n}") for n in range(4)])
    assert time.monotonic() - start < 0.5  # (four echo replies take milliseconds)


def test_429_waits_as_retry_after_says_then_succeeds(
    fake_chat: FakeChatServer, tmp_path: Path
) -> None:
    fake_chat.script = lambda i, body: (
        Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.3"})
        if i == 0
        else Reply(body=completion("fine"))
    )
    client = backend(fake_chat, backoff_s=30.0)  # backoff alone would wait ~30 s
    start = time.monotonic()
    assert client.generate([ask(write_png(tmp_path / "p.png"))]) == ["fine"]
    assert 0.25 < time.monotonic() - start < 5.0
    assert len(fake_chat.bodies) == 2


def test_500s_until_retries_run_out(fake_chat: FakeChatServer, tmp_path: Path) -> None:
    fake_chat.script = lambda i, body: Reply(500, {"error": {"message": "GPU on fire"}})
    picture = write_png(tmp_path / "cat.png")
    with pytest.raises(ServerFailed) as caught:
        backend(fake_chat, max_retries=2).generate([ask(picture)])
    assert len(fake_chat.bodies) == 3
    message = str(caught.value)
    assert str(picture) in message and "HTTP 500" in message and "GPU on fire" in message


def test_a_hanging_server_times_out(fake_chat: FakeChatServer, tmp_path: Path) -> None:
    fake_chat.script = lambda i, body: Reply(body=completion("late"), delay_s=0.5)
    picture = write_png(tmp_path / "cat.png")
    with pytest.raises(EndpointTimeout) as caught:
        backend(fake_chat, timeout_s=0.15, max_retries=1).generate([ask(picture)])
    assert len(fake_chat.bodies) == 2
    assert str(picture) in str(caught.value) and "timeout_s" in str(caught.value)


def test_an_unreachable_host_is_named(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = OpenAIChatBackend(
        f"http://127.0.0.1:{port}/v1", "m", api_key_env=None, max_retries=1, backoff_s=0.01
    )
    picture = write_png(tmp_path / "cat.png")
    with pytest.raises(EndpointUnreachable) as caught:
        client.generate([ask(picture)])
    assert str(picture) in str(caught.value) and f"127.0.0.1:{port}" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (404, UnknownModel, "/v1"),
        (400, RequestRejected, "image too large"),
        (422, RequestRejected, "image too large"),
    ],
)
def test_refusals_fail_at_once_with_the_servers_message(
    fake_chat: FakeChatServer, tmp_path: Path, status: int, error: type, words: str
) -> None:
    fake_chat.script = lambda i, body: Reply(status, {"error": {"message": "image too large"}})
    picture = write_png(tmp_path / "cat.png")
    with pytest.raises(error) as caught:
        backend(fake_chat, max_retries=3).generate([ask(picture)])
    assert len(fake_chat.bodies) == 1  # not retried
    assert str(picture) in str(caught.value) and words in str(caught.value)


@pytest.mark.parametrize("body", ['{"object": "list"}', "<html>proxy</html>", '{"choices": []}'])
def test_a_reply_that_is_not_a_chat_completion(
    fake_chat: FakeChatServer, tmp_path: Path, body: str
) -> None:
    fake_chat.script = lambda i, _: Reply(body=body)
    with pytest.raises(MalformedReply, match="cat.png"):
        backend(fake_chat).generate([ask(write_png(tmp_path / "cat.png"))])


def test_the_api_key_never_shows_in_errors_logs_or_repr(
    fake_chat: FakeChatServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log at debug too
    monkeypatch.setenv("PLAIT_TEST_KEY", KEY)
    picture = write_png(tmp_path / "cat.png")
    client = backend(fake_chat, api_key_env="PLAIT_TEST_KEY", max_retries=1)
    seen: list[str] = [repr(client), str(vars(client))]
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    for status, error in [(401, AuthenticationFailed), (400, RequestRejected), (500, ServerFailed)]:
        fake_chat.script = lambda i, body, status=status: Reply(status, echo)
        with pytest.raises(error) as caught:
            client.generate([ask(picture)])
        seen += [str(caught.value), "".join(traceback.format_exception(caught.value))]
    assert fake_chat.headers[0]["authorization"] == f"Bearer {KEY}"  # it was sent
    assert "PLAIT_TEST_KEY" in seen[2]  # the 401 says where the key comes from
    seen.append(caplog.text)
    assert not [text for text in seen if KEY in text or KEY[8:] in text]


def test_401_without_a_key_says_which_variable_to_set(
    fake_chat: FakeChatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLAIT_TEST_KEY", raising=False)
    fake_chat.script = lambda i, body: Reply(401, {"error": {"message": "no key"}})
    client = backend(fake_chat, api_key_env="PLAIT_TEST_KEY")
    with pytest.raises(AuthenticationFailed, match="no key was sent.*PLAIT_TEST_KEY"):
        client.generate([ask(write_png(tmp_path / "cat.png"))])
    assert "authorization" not in fake_chat.headers[0]


def test_sounds_go_as_input_audio_wav_or_mp3(fake_chat: FakeChatServer, tmp_path: Path) -> None:
    import soundfile

    wav = write_sound(tmp_path / "tone.wav")
    flac = write_sound(tmp_path / "tone.flac")
    client = backend(fake_chat)
    assert "audio" in client.modalities
    client.generate([ask(wav, "what is the wav"), ask(flac, "what is the flac")])
    # requests run concurrently, so the server may see them in either order: by prompt
    by_prompt = {
        part["text"]: body["messages"][0]["content"][0]
        for body in fake_chat.bodies
        for part in body["messages"][0]["content"]
        if part["type"] == "text"
    }
    sent = [by_prompt["what is the wav"], by_prompt["what is the flac"]]
    assert [part["type"] for part in sent] == ["input_audio", "input_audio"]
    assert sent[0]["input_audio"] == {
        "data": base64.b64encode(wav.read_bytes()).decode(),
        "format": "wav",
    }
    assert sent[1]["input_audio"]["format"] == "wav"  # flac converted, same samples
    converted, rate = soundfile.read(io.BytesIO(base64.b64decode(sent[1]["input_audio"]["data"])))
    original, original_rate = soundfile.read(flac)
    assert rate == original_rate and converted.shape == original.shape
    assert abs(converted - original).max() < 1e-3


def test_a_sound_format_the_protocol_lacks_is_refused_before_sending(
    fake_chat: FakeChatServer,
) -> None:
    aac = Media(data=b"\x00" * 64, mime="audio/aac", name="speech.aac")
    with pytest.raises(UnsupportedMedia, match=r"speech\.aac.*wav and mp3"):
        backend(fake_chat).generate([VlmRequest(media=(aac,), prompt="what is this")])
    assert fake_chat.bodies == []


def test_choices_are_listed_and_the_reply_mapped(fake_chat: FakeChatServer, tmp_path: Path) -> None:
    replies = ["It is a Cat.", "cat or dog?", "a bird"]
    fake_chat.script = lambda i, body: Reply(body=completion(replies[i]))
    picture = write_png(tmp_path / "p.png")
    requests = [ask(picture, f"what animal {n}", choices=("cat", "dog")) for n in range(3)]
    answers = backend(fake_chat, concurrency=1).generate(requests)
    assert answers == ["cat", NO_CHOICE, NO_CHOICE]
    text = fake_chat.bodies[0]["messages"][0]["content"][-1]["text"]
    assert text.startswith("what animal 0") and "cat, dog" in text


@pytest.mark.parametrize("url", ["", "   ", None])
def test_there_is_no_default_host(url: str | None) -> None:
    with pytest.raises(ConfigError, match="base_url must be given.*sends your pictures"):
        OpenAIChatBackend(url, "gpt-4o")  # type: ignore[arg-type]


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        OpenAIChatBackend("api.openai.com/v1", "gpt-4o")
    with pytest.raises(ConfigError, match="concurrency.*timeout_s"):
        OpenAIChatBackend("http://127.0.0.1:1/v1", "m", concurrency=0, timeout_s=0)


@pytest.mark.parametrize("secret", [KEY, "a1B2c3D4e5F6g7H8i9J0k1L2"])
def test_a_key_passed_as_the_variable_name_is_refused_unechoed(secret: str) -> None:
    with pytest.raises(ConfigError, match="not the key itself") as caught:
        OpenAIChatBackend("http://127.0.0.1:1/v1", "m", api_key_env=secret)
    assert secret not in str(caught.value)


def test_credentials_or_a_query_in_base_url_are_refused() -> None:
    with pytest.raises(ConfigError, match="user name or password") as caught:
        OpenAIChatBackend(f"https://me:{KEY}@example.com/v1", "m")
    assert KEY not in str(caught.value)
    with pytest.raises(ConfigError, match="query"):
        OpenAIChatBackend("https://example.com/v1?api-version=1", "m")


def test_identity_names_model_and_server() -> None:
    one = OpenAIChatBackend("http://127.0.0.1:1/v1/", "m", api_key_env=None)
    assert one.identity == "openai-chat:m@http://127.0.0.1:1/v1"
    assert one.url == "http://127.0.0.1:1/v1/chat/completions"
    assert OpenAIChatBackend("http://h:1/v1", "other").identity != one.identity
