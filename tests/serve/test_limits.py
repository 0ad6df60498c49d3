"""Every limit answers with a clear 4xx JSON error, hostile uploads never break the
service (good requests still succeed), auth, request ids in the logs, 503 and 504."""

from __future__ import annotations

import io
import logging
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from plait.serve import ServeSettings, create_app
from plait.serve.uploads import wav_header_seconds

from .conftest import png_bytes, wav_bytes

KEY = "s3cret-test-key"


def pixel_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A valid PNG header claiming width x height pixels over a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def hour_long_header() -> bytes:
    """A WAV header claiming an hour of 16 kHz audio, followed by 0.1 s of samples."""
    rate, frames = 16000, 16000 * 3600
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + frames * 2)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", frames * 2)
    )
    return header + b"\0" * 3200


def hour_long_wav() -> bytes:
    """A real hour-long WAV (1 kHz, 8-bit: 3.6 MB), under the body limit."""
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(3600 * 1000, np.float32), 1000, format="WAV", subtype="PCM_U8")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(classifier):
    settings = ServeSettings(max_body_bytes=5 * 2**20, max_text_chars=200, max_audio_seconds=5)
    with TestClient(create_app(classifier, settings)) as c:
        yield c


def _good(client, **headers):
    answer = client.post(
        "/v1/predict",
        data={"caption": "a red circle"},
        files={"image": ("x.png", png_bytes(), "image/png")},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    return answer


def _hostile(client):
    """(name, response) of each hostile request, interleaved with good ones."""
    png = png_bytes()
    uploads = {
        "truncated png": ("image", ("t.png", png[: len(png) // 2], "image/png")),
        "pixel bomb": ("image", ("bomb.png", pixel_bomb(), "image/png")),
        "hour-long wav header": ("audio", ("h.wav", hour_long_header(), "audio/wav")),
        "hour-long wav": ("audio", ("h.wav", hour_long_wav(), "audio/wav")),
        "text as image": ("image", ("x.txt", b"hello", "text/plain")),
        "svg as image": ("image", ("x.svg", b"<svg/>", "image/svg+xml")),
        "png as audio": ("audio", ("x.wav", png, "audio/wav")),
    }
    for name, (field, upload) in uploads.items():
        yield name, client.post("/v1/predict", files={field: upload})
        _good(client)
    yield (
        "oversized body",
        client.post("/v1/predict", files={"image": ("b.png", b"\0" * (6 * 2**20), "image/png")}),
    )
    _good(client)
    yield (
        "chunked oversized body",
        client.post(
            "/v1/predict",
            content=iter([b"{" + b" " * 2**20] * 6),
            headers={"content-type": "application/json"},
        ),
    )
    _good(client)
    yield "long text", client.post("/v1/predict", data={"caption": "x" * 201})
    yield (
        "wrong body type",
        client.post("/v1/predict", content=b"x", headers={"content-type": "text/csv"}),
    )
    yield (
        "path instead of file",
        client.post("/v1/predict", json={"rows": [{"image": "/etc/passwd"}]}),
    )
    _good(client)


EXPECTED = {
    "truncated png": (422, "unreadable_input"),
    "pixel bomb": (413, "image_too_large"),
    "hour-long wav header": (413, "audio_too_long"),
    "hour-long wav": (413, "audio_too_long"),
    "text as image": (415, "unsupported_media_type"),
    "svg as image": (415, "unsupported_media_type"),
    "png as audio": (415, "unsupported_media_type"),
    "oversized body": (413, "body_too_large"),
    "chunked oversized body": (413, "body_too_large"),
    "long text": (413, "text_too_long"),
    "wrong body type": (415, "unsupported_media_type"),
    "path instead of file": (422, "file_expected"),
}


def test_hostile_uploads_get_4xx_and_good_requests_still_succeed(client):
    seen = {}
    for name, answer in _hostile(client):
        body = answer.json()
        seen[name] = (answer.status_code, body["error"]["code"])
        assert body["error"]["message"] and body["request_id"] == answer.headers["x-request-id"]
    assert seen == EXPECTED
    assert client.get("/v1/health/ready").status_code == 200


def test_the_hostile_corpus_sent_through_the_service(client, hostile_table: Path):
    """The honest-failure corpus (tests/conftest.py HOSTILE_FILES): every file that
    exists is uploaded and refused with a 4xx; a missing one cannot even be named."""
    from tests.conftest import HOSTILE_FILES  # noqa: PLC0415

    folder = hostile_table.parent
    for _, (column, name) in sorted(HOSTILE_FILES.items()):
        path = folder / name
        if path.exists():
            kind = "image/png" if column == "image" else "audio/wav"
            answer = client.post("/v1/predict", files={column: (name, path.read_bytes(), kind)})
        else:
            answer = client.post("/v1/predict", json={"rows": [{column: str(path)}]})
        assert 400 <= answer.status_code < 500, (name, answer.text)
        assert answer.json()["error"]["message"]
        _good(client)


def test_wav_header_duration():
    assert wav_header_seconds(hour_long_header()) == pytest.approx(3600)
    assert wav_header_seconds(wav_bytes(0.5)) == pytest.approx(0.5)
    assert wav_header_seconds(png_bytes()) is None


def test_too_many_rows(classifier):
    with TestClient(create_app(classifier, ServeSettings(max_rows=2))) as c:
        answer = c.post("/v1/predict", json={"rows": [{"caption": "x"}] * 3})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_many_rows"


def test_api_key(classifier):
    settings = ServeSettings().model_copy(update={"api_key": __import__("pydantic").SecretStr(KEY)})
    with TestClient(create_app(classifier, settings)) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "nope"}):
            answer = c.post("/v1/predict", json={"rows": [{"caption": "x"}]}, headers=headers)
            assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
        assert c.get("/v1/card").status_code == 401
        assert c.get("/v1/health/live").status_code == 200  # health is open
        _good(c, Authorization=f"Bearer {KEY}")
        _good(c, **{"X-API-Key": KEY})
        assert c.get("/v1/card", headers={"Authorization": f"Bearer {KEY}"}).json()["auth"] is True


def test_request_ids_are_echoed_made_and_logged(client, caplog):
    with caplog.at_level(logging.INFO, logger="plait.serve"):
        mine = _good(client, **{"X-Request-ID": "trace-42"})
        made = _good(client)
        hostile = client.get("/v1/health/live", headers={"X-Request-ID": "bad id\nwith newline"})
    assert mine.headers["x-request-id"] == "trace-42" == mine.json()["request_id"]
    generated = made.headers["x-request-id"]
    assert generated and generated != "trace-42"
    assert "\n" not in hostile.headers["x-request-id"]
    lines = [r.getMessage() for r in caplog.records if r.name == "plait.serve"]
    assert any("trace-42" in line and "/v1/predict" in line for line in lines)
    assert any(generated in line for line in lines)


class Slow:
    """The classifier with a slow `predict` (a stand-in for a big model)."""

    def __init__(self, inner, seconds: float) -> None:
        self._inner, self._seconds = inner, seconds

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def predict(self, *args, **kwargs):
        time.sleep(self._seconds)
        return self._inner.predict(*args, **kwargs)


def test_timeout_is_504_and_the_service_goes_on(classifier):
    with TestClient(create_app(Slow(classifier, 0.6), ServeSettings(timeout_s=0.2))) as c:
        answer = c.post("/v1/predict", json={"rows": [{"caption": "x"}]})
        assert answer.status_code == 504 and answer.json()["error"]["code"] == "timeout"
        time.sleep(0.6)
        assert c.get("/v1/health/ready").status_code == 200


def test_over_the_concurrency_cap_is_503_with_retry_after(classifier):
    settings = ServeSettings(max_concurrency=1, max_batch_size=1)
    with TestClient(create_app(Slow(classifier, 0.5), settings)) as c:

        def call(_):
            return c.post("/v1/predict", json={"rows": [{"caption": "x"}]})

        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(call, range(3)))
        codes = sorted(a.status_code for a in answers)
        assert codes[0] == 200 and 503 in codes
        busy = next(a for a in answers if a.status_code == 503)
        assert busy.headers["retry-after"] == "1" and busy.json()["error"]["code"] == "busy"
        assert c.get("/v1/health/live").status_code == 200  # health is never capped
