"""Errors the service answers with: a status, a short code and a readable sentence.

`ApiError` refuses a whole request; `RowRejected` refuses one row of it (the other rows
still get results). Both turn into the JSON envelope of SERVE_API.md:
`{"error": {"code": ..., "message": ...}, "request_id": ...}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """A request the service refuses as a whole (4xx/5xx)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class RowError:
    """Why one row has no result, and the status it would get on its own."""

    status: int
    code: str
    message: str


class RowRejected(Exception):
    """One row's input breaks a limit or cannot be read."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.error = RowError(status, code, message)


def envelope(code: str, message: str, request_id: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}, "request_id": request_id, **extra}
