"""Pictures and sounds as chat-completions content parts.

Pictures travel as data URLs in `image_url` parts, which every vision endpoint accepts.
Sounds travel as `input_audio` parts, which the protocol defines for wav and mp3 only:
flac and ogg files are decoded with soundfile and re-encoded as 16-bit wav (lossless for
flac; the decoded ogg signal, not its compressed bytes), anything else is refused by name.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from plait.vlm.base import Media
from plait.vlm.errors import UnsupportedMedia

#: audio formats the protocol's `input_audio` part takes, by media type
AUDIO_FORMATS: dict[str, str] = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}
#: audio formats converted to wav before sending (soundfile reads them)
CONVERTED_TO_WAV: set[str] = {"audio/flac", "audio/x-flac", "audio/ogg"}


def content_parts(media: tuple[Media, ...], text: str) -> list[dict[str, Any]]:
    """The `content` list of one user message: each media part, then the text."""
    parts = [media_part(item) for item in media]
    parts.append({"type": "text", "text": text})
    return parts


def check_sendable(media: Media) -> None:
    """Raise `UnsupportedMedia` now for a sound format no part can carry, so a batch fails
    before its first request rather than halfway through."""
    if media.kind == "audio" and media.mime not in {*AUDIO_FORMATS, *CONVERTED_TO_WAV}:
        raise UnsupportedMedia(
            f"{media.name}: {media.mime} cannot be sent to an OpenAI-compatible endpoint; "
            "the protocol takes wav and mp3 (flac and ogg are converted to wav): convert it "
            "first, e.g. `ffmpeg -i IN OUT.wav`"
        )


def media_part(media: Media) -> dict[str, Any]:
    """One `image_url` or `input_audio` part; `UnsupportedMedia` for a format it cannot send."""
    check_sendable(media)
    if media.kind == "image":
        url = f"data:{media.mime};base64,{_b64(media.data)}"
        return {"type": "image_url", "image_url": {"url": url}}
    if media.mime in AUDIO_FORMATS:
        data, fmt = media.data, AUDIO_FORMATS[media.mime]
    else:
        data, fmt = _to_wav(media), "wav"
    return {"type": "input_audio", "input_audio": {"data": _b64(data), "format": fmt}}


def _to_wav(media: Media) -> bytes:
    import soundfile

    try:
        samples, rate = soundfile.read(io.BytesIO(media.data), dtype="int16", always_2d=True)
    except Exception as error:  # soundfile raises its own LibsndfileError, or RuntimeError
        raise UnsupportedMedia(
            f"{media.name}: cannot be decoded as {media.mime} ({error}); re-encode it as wav"
        ) from error
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
