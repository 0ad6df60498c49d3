"""What a running service allows: batching, limits and where it listens (`plait serve`).

One pydantic model so the CLI, `create_app` and the tests share the same defaults and
the same validation; the API key is never a CLI option, it comes from `PLAIT_API_KEY`.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from plait.errors import PlaitError

API_KEY_ENV = "PLAIT_API_KEY"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# Media types an upload may declare (multipart) or be sniffed as (JSON base64), per kind.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp", "image/tiff")
AUDIO_TYPES = (
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/vnd.wave",
    "audio/flac",
    "audio/x-flac",
    "audio/ogg",
)


class ServeSettings(BaseModel):
    """Limits and batching of one service. Every limit answers with a 4xx JSON error."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    runtime: Literal["torch", "onnx"] = "torch"
    max_batch_size: int = Field(32, ge=1, description="rows per model call (1: no batching)")
    max_wait_ms: float = Field(
        5.0, ge=0, description="how long a batch waits for more rows while traffic flows"
    )
    max_body_bytes: int = Field(20 * 2**20, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=1)
    max_audio_seconds: float = Field(60.0, gt=0)
    max_text_chars: int = Field(10_000, ge=1)
    max_rows: int = Field(64, ge=1, description="rows in one request")
    max_concurrency: int = Field(64, ge=1, description="requests in flight before 503")
    timeout_s: float = Field(30.0, gt=0, description="per request, before 504")
    api_key: SecretStr | None = None
    image_types: tuple[str, ...] = IMAGE_TYPES
    audio_types: tuple[str, ...] = AUDIO_TYPES

    @property
    def content_types(self) -> dict[str, list[str]]:
        return {"image": list(self.image_types), "audio": list(self.audio_types)}

    def with_env_key(self) -> ServeSettings:
        """These settings with the API key from `PLAIT_API_KEY` (when set and not empty)."""
        key = os.environ.get(API_KEY_ENV, "").strip()
        return self.model_copy(update={"api_key": SecretStr(key) if key else None})

    def check_exposure(self) -> None:
        """Refuse to listen beyond this machine without an API key.

        Raises:
            PlaitError: a non-loopback host and no key.
        """
        if self.host not in LOOPBACK_HOSTS and self.api_key is None:
            raise PlaitError(
                f"refusing to listen on {self.host} without an API key: anyone who can reach "
                f"this machine could use the model. Set the environment variable {API_KEY_ENV} "
                "(clients send `Authorization: Bearer <key>`), or keep the default "
                "--host 127.0.0.1"
            )
