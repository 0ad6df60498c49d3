"""What every request goes through before its endpoint: an id, the body-size limit,
the concurrency cap, metrics and one log line.

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware): it adds well under a
millisecond, and it can refuse an oversized body while it is still arriving.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from plait.serve.errors import envelope
from plait.serve.metrics import Metrics
from plait.serve.settings import ServeSettings

log = logging.getLogger("plait.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a client's id is echoed only if tame
_ITEMS = re.compile(r"^/v1/items/[^/]+/media$")
ARRIVING = "plait_arriving"
UNCAPPED = ("/v1/health/live", "/v1/health/ready", "/metrics")  # answer even when busy


def endpoint_of(path: str, known: set[str]) -> str:
    """The metrics label of a path: a route template, never a raw client path."""
    if path in known:
        return path
    if _ITEMS.match(path):
        return "/v1/items/{id}/media"
    if path.startswith("/static/"):
        return "/static"
    return "other"


class ServiceMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        settings: ServeSettings,
        metrics: Metrics,
        known: set[str],
        arriving: Counter[str] | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.known = known
        self.in_flight = 0
        # batched endpoint -> requests received but not yet handed to its batcher (the
        # endpoint pops its own count with `arrived` once it has queued the rows)
        self.arriving = arriving if arriving is not None else Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if _ID_OK.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = [500]
        path = scope["path"]
        endpoint = endpoint_of(path, self.known)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        capped = path.startswith("/v1/") and path not in UNCAPPED
        if endpoint in self.arriving:
            self.arriving[endpoint] += 1
            scope["state"][ARRIVING] = (self.arriving, endpoint)
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            if capped and self.in_flight > self.settings.max_concurrency:
                await _answer(
                    send_with_id,
                    503,
                    envelope(
                        "busy",
                        f"the service is answering {self.settings.max_concurrency} requests "
                        "already; retry shortly",
                        request_id,
                    ),
                    {"retry-after": "1"},
                )
                return
            body = await self._read_body(receive, headers)
            if body is None:
                await _answer(
                    send_with_id,
                    413,
                    envelope(
                        "body_too_large",
                        f"the request body is over {self.settings.max_body_bytes:,} bytes",
                        request_id,
                    ),
                )
                return
            await self.app(scope, _replay(body, receive), send_with_id)
        finally:
            arrived(scope)
            self.in_flight -= 1
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - start
            if endpoint != "/metrics":
                self.metrics.observe(endpoint, scope["method"], status[0], seconds)
            log.info(
                "[%s] %s %s -> %d in %.1f ms",
                request_id,
                scope["method"],
                path,
                status[0],
                seconds * 1e3,
            )

    async def _read_body(self, receive: Receive, headers: dict[str, str]) -> list[Message] | None:
        """The body's messages, or None once it is over the limit (read no further)."""
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return None
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > limit:
                return None
            if not message.get("more_body", False):
                break
        return messages


def arrived(scope: Scope) -> None:
    """This request's rows are queued (or never will be): stop counting it as arriving."""
    found = scope.get("state", {}).pop(ARRIVING, None)
    if found is not None:
        counter, endpoint = found
        counter[endpoint] -= 1


def _replay(messages: list[Message], original: Receive) -> Receive:
    """A `receive` that hands the buffered body out again, then the client's own."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await original()

    return receive


async def _answer(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
