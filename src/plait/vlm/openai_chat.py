"""Any OpenAI-compatible chat-completions server as a `VlmBackend`.

Describing a picture this way sends the picture off the machine, so there is no default
host: `base_url` names the server (the API root, usually ending in `/v1`: OpenAI,
vLLM, llama.cpp, Ollama, `transformers serve`). The API key is read from an environment
variable and only ever put in the Authorization header: not in `repr`, logs or errors.

Requests run `concurrency` at a time on a thread pool, spaced by a requests-per-minute
limit; 429, 5xx, timeouts and connection errors are retried with exponential backoff and
jitter, honouring the server's Retry-After; anything else fails at once with a `VlmError`
subclass that names the media file and says what to change.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any
from urllib.parse import urlsplit

import httpx

from plait.errors import ConfigError
from plait.utils.progress import progress_bar
from plait.vlm.base import MediaKind, VlmRequest
from plait.vlm.choices import choice_prompt, match_choice
from plait.vlm.errors import (
    AuthenticationFailed,
    EndpointTimeout,
    EndpointUnreachable,
    MalformedReply,
    RequestRejected,
    ServerFailed,
    UnknownModel,
    VlmError,
)
from plait.vlm.media_parts import check_sendable, content_parts
from plait.vlm.rate_limit import RateLimiter, backoff_delay, retry_after_s

log = logging.getLogger(__name__)

#: HTTP statuses worth another try: rate limited, or the server's own trouble
RETRYABLE = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


class _Secret:
    """Holds the API key so that printing the object never prints the key."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__


class _Stopped(VlmError):
    """Another request of the batch failed first; this one gave up quietly."""


class OpenAIChatBackend:
    """Chat completions at `base_url` with `model`; see the module docstring.

    `api_key_env` names the environment variable holding the key (None: send no key, for
    a local server); `concurrency` requests are in flight at most; `requests_per_minute`
    spaces their starts (None: no limit); each request is tried `1 + max_retries` times,
    waiting `backoff_s * 2**attempt` (jittered, or what Retry-After asks) in between; one
    try waits `timeout_s` for the answer.
    """

    modalities: frozenset[MediaKind] = frozenset({"image", "audio"})

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 4,
        requests_per_minute: float | None = None,
        max_retries: int = 5,
        timeout_s: float = 60.0,
        backoff_s: float = 1.0,
    ) -> None:
        self.base_url = _checked_base_url(base_url)
        if not model or not model.strip():
            raise ConfigError("model must name the model the server should use, e.g. gpt-4o")
        _check_numbers(concurrency, requests_per_minute, max_retries, timeout_s, backoff_s)
        self.model = model
        self.url = (
            self.base_url
            if self.base_url.endswith("/chat/completions")
            else f"{self.base_url}/chat/completions"
        )
        _check_key_env(api_key_env)
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        self._key = _Secret(key) if key else None
        if api_key_env and not key:
            log.info("$%s is not set: requests to %s carry no API key", api_key_env, self.url)
        self.concurrency = concurrency
        self.requests_per_minute = requests_per_minute
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.identity = f"openai-chat:{model}@{self.base_url}"

    def __repr__(self) -> str:
        return (
            f"OpenAIChatBackend(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r}, concurrency={self.concurrency})"
        )

    def generate(self, requests: Sequence[VlmRequest], *, progress: bool = True) -> list[str]:
        """One answer per request, in order; the first failure stops the batch and raises."""
        for request in requests:  # an unsendable file fails the batch before any request
            for media in request.media:
                check_sendable(media)
        if not requests:
            return []
        log.info("sending %d request(s) to %s (model %s)", len(requests), self.url, self.model)
        answers: list[str] = [""] * len(requests)
        limiter_stop = threading.Event()
        limiter = RateLimiter(self.requests_per_minute, sleep=limiter_stop.wait)
        headers = {"Authorization": f"Bearer {self._key.reveal()}"} if self._key else {}
        limits = httpx.Limits(max_connections=self.concurrency)
        with (
            httpx.Client(timeout=self.timeout_s, headers=headers, limits=limits) as client,
            progress_bar(progress, f"asking {self.model}", len(requests)) as advance,
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="plait-vlm") as pool,
        ):
            futures = {
                pool.submit(self._ask, client, limiter, limiter_stop, request): index
                for index, request in enumerate(requests)
            }
            try:
                for future in as_completed(futures):
                    answers[futures[future]] = future.result()  # raises the first failure
                    advance()
            finally:
                limiter_stop.set()  # wake sleeping workers; they give up without a request
                pool.shutdown(wait=True, cancel_futures=True)
        return answers

    def _payload(self, request: VlmRequest) -> dict[str, Any]:
        text = choice_prompt(request.prompt, request.choices) if request.choices else request.prompt
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": content_parts(request.media, text)}],
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
        }

    def _ask(
        self,
        client: httpx.Client,
        limiter: RateLimiter,
        stop: threading.Event,
        request: VlmRequest,
    ) -> str:
        """Send one request with retries; the answer text, or a `VlmError`. The payload
        (base64 media) is built here, so a large batch holds only `concurrency` of them."""
        payload = self._payload(request)
        last: httpx.Response | Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt > 0:
                delay = backoff_delay(attempt - 1, self.backoff_s)
                if isinstance(last, httpx.Response):
                    delay = retry_after_s(last.headers.get("retry-after")) or delay
                log.info("retrying %s in %.1f s (%s)", _where(request), delay, _why(last))
                if stop.wait(delay):
                    raise _Stopped("stopped")
            limiter.wait()
            if stop.is_set():
                raise _Stopped("stopped")
            try:
                response = client.post(self.url, json=payload)
            except httpx.TransportError as error:  # timeouts, refused connections, resets
                last = error
                continue
            if response.status_code == 200:
                return self._answer(response, request)
            if response.status_code not in RETRYABLE:
                raise self._refusal(response, request)
            last = response
        raise self._gave_up(last, request)

    def _answer(self, response: httpx.Response, request: VlmRequest) -> str:
        try:
            body = response.json()
            content = body["choices"][0]["message"]["content"]
            if isinstance(content, list):  # some servers return content parts
                content = "".join(part.get("text", "") for part in content)
            if not isinstance(content, str):
                raise TypeError(f"message content is {type(content).__name__}")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
            raise MalformedReply(
                f"{_where(request)}: {self.url} answered HTTP 200 but not with a chat "
                f"completion ({type(error).__name__}: {error}); is base_url an "
                "OpenAI-compatible API root (usually ending in /v1)?"
            ) from None
        reply = content.strip()
        return match_choice(reply, request.choices) if request.choices else reply

    def _refusal(self, response: httpx.Response, request: VlmRequest) -> VlmError:
        """The error for a status that another try would not change."""
        code, where = response.status_code, _where(request)
        if code in (401, 403):
            hint = (
                f"check the key in ${self.api_key_env}"
                if self._key
                else f"no key was sent: put it in the environment variable "
                f"{self.api_key_env or 'OPENAI_API_KEY'} (api_key_env names it)"
            )
            return AuthenticationFailed(
                f"{where}: {self.url} refused the API key (HTTP {code}); {hint}"
            )
        said = self._server_message(response)
        if code == 404:
            return UnknownModel(
                f"{where}: {self.url} answered 404 for model '{self.model}': the server does not "
                f"know that model, or base_url is not its API root (usually ending in /v1). "
                f"Server said: {said}"
            )
        return RequestRejected(f"{where}: {self.url} rejected the request (HTTP {code}): {said}")

    def _gave_up(self, last: httpx.Response | Exception | None, request: VlmRequest) -> VlmError:
        """The error once every try failed with something worth retrying."""
        tries, where = self.max_retries + 1, _where(request)
        if isinstance(last, httpx.Response):
            return ServerFailed(
                f"{where}: {self.url} answered HTTP {last.status_code} {tries} time(s) in a row: "
                f"{self._server_message(last)}; try again later, or lower concurrency / "
                "requests_per_minute"
            )
        if isinstance(last, httpx.TimeoutException):
            return EndpointTimeout(
                f"{where}: no answer from {self.url} within {self.timeout_s:g} s, {tries} "
                "time(s); raise timeout_s for a slow model, or check the server"
            )
        return EndpointUnreachable(
            f"{where}: cannot reach {self.url} ({_why(last)}) after {tries} tries; is the "
            "server running and base_url right?"
        )

    def _server_message(self, response: httpx.Response) -> str:
        """The server's own explanation (OpenAI's error.message, FastAPI's detail, or the
        start of the body), with the API key blanked out should the server echo it."""
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        if isinstance(body, dict):
            body = body.get("error", body.get("detail", body))
        if isinstance(body, dict):
            body = body.get("message", body)
        message = body if isinstance(body, str) else str(body)
        message = " ".join(message.split())[:500] or f"HTTP {response.status_code}, empty body"
        if self._key:
            message = message.replace(self._key.reveal(), "<hidden>")
        return message


def _where(request: VlmRequest) -> str:
    """The media file(s) or row a request came from, for error messages."""
    if request.row is not None:
        return str(request.row).rstrip(": ")
    if request.media:
        return ", ".join(media.name for media in request.media)
    return "a text-only request"


def _why(last: httpx.Response | Exception | None) -> str:
    if isinstance(last, httpx.Response):
        return f"HTTP {last.status_code}"
    if last is None:
        return "no try made"
    return f"{type(last).__name__}: {last}" if str(last) else type(last).__name__


def _checked_base_url(base_url: str | None) -> str:
    if not base_url or not base_url.strip():
        raise ConfigError(
            "base_url must be given: describing sends your pictures and sounds to that "
            "server, so Plait has no default host. Name the API root, e.g. "
            "https://api.openai.com/v1 or http://127.0.0.1:8000/v1 for a local server"
        )
    parts = urlsplit(base_url.strip())
    if parts.username or parts.password:  # not echoed: it holds a credential
        raise ConfigError(
            "base_url must not hold a user name or password; put the API key in an "
            "environment variable and name it with api_key_env"
        )
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"base_url {base_url!r} is not an http(s) URL; name the API root, e.g. "
            "https://api.openai.com/v1"
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            f"base_url {base_url!r} has a ?query or #fragment; name the API root alone "
            "(Plait appends /chat/completions to it)"
        )
    return base_url.strip().rstrip("/")


def _check_key_env(api_key_env: str | None) -> None:
    """`api_key_env` must be a variable's name; a key passed there by mistake would end up
    in log lines and messages that quote the name, so it is refused without echoing it."""
    if api_key_env is None:
        return
    looks_like_key = (
        len(api_key_env) >= 20
        and any(c.islower() for c in api_key_env)
        and any(c.isdigit() for c in api_key_env)
    )
    if looks_like_key or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
        raise ConfigError(
            "api_key_env must name the environment variable that holds the key (e.g. "
            "OPENAI_API_KEY), not the key itself: export the key, then pass its name"
        )


def _check_numbers(
    concurrency: int,
    requests_per_minute: float | None,
    max_retries: int,
    timeout_s: float,
    backoff_s: float,
) -> None:
    problems = [
        f"{name} must be {rule}, got {value}"
        for name, value, ok, rule in [
            ("concurrency", concurrency, concurrency >= 1, "at least 1"),
            (
                "requests_per_minute",
                requests_per_minute,
                requests_per_minute is None or requests_per_minute > 0,
                "positive (or None for no limit)",
            ),
            ("max_retries", max_retries, max_retries >= 0, "0 or more"),
            ("timeout_s", timeout_s, timeout_s > 0, "positive"),
            ("backoff_s", backoff_s, backoff_s >= 0, "0 or more"),
        ]
        if not ok
    ]
    if problems:
        raise ConfigError("; ".join(problems))
