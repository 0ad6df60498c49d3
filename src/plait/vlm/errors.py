"""Why a large model gave no answer, one class per thing the user does differently.

Every message names the media file(s) of the request that failed and the server asked,
never the API key.
"""

from __future__ import annotations

from plait.errors import DataError, PlaitError


class VlmError(PlaitError):
    """A large model could not answer a request."""


class EndpointUnreachable(VlmError):
    """No connection to the server (wrong host or port, server down, no network)."""


class AuthenticationFailed(VlmError):
    """The server refused the API key (HTTP 401 or 403)."""


class UnknownModel(VlmError):
    """The server has no such model, or `base_url` is not its API root (HTTP 404)."""


class RequestRejected(VlmError):
    """The server refused the request as malformed or too large (HTTP 400, 413, 422 ...);
    the message carries the server's own explanation."""


class EndpointTimeout(VlmError):
    """The server did not answer within the timeout, again and again until retries ran out."""


class ServerFailed(VlmError):
    """The server kept answering 429 (rate limited) or 5xx until retries ran out."""


class MalformedReply(VlmError):
    """The server answered 200 but not with a chat completion Plait can read."""


class UnsupportedMedia(VlmError, DataError):
    """A file the backend cannot send (a format the protocol or the model does not take)."""
