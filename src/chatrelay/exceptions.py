"""chatrelay's errors, each with the machine-readable ``code`` of PROTOCOL.md.

The tree::

    ChatRelayError            code, detail, http_status
    ├── InvalidMessage        invalid_message   422
    ├── Busy                  busy              409
    ├── NotFound              not_found         404
    ├── Forbidden             forbidden         403
    ├── RateLimited           rate_limited      429  (retry_after seconds)
    ├── Unavailable           unavailable       503
    ├── ModelError            model_error       502  (a backend could not answer)
    ├── EngineError           unavailable       503  (the engine could not be reached)
    │   └── LeaseLost         lease_lost        409  (a fencing token is no longer current)
    └── NotAuthenticated      not_authenticated 401  (close 4401 on a socket)

    HandshakeRefused          a socket refused before its welcome: close code and reason

Library errors are translated into these at the boundary (``raise X(...) from exc``);
clients see ``{"code", "detail"}`` and never a stack trace.
"""

from __future__ import annotations


class ChatRelayError(Exception):
    """Base of every error a client may be shown."""

    code = "internal"
    http_status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidMessage(ChatRelayError):
    code = "invalid_message"
    http_status = 422


class Busy(ChatRelayError):
    code = "busy"
    http_status = 409


class NotFound(ChatRelayError):
    code = "not_found"
    http_status = 404


class Forbidden(ChatRelayError):
    code = "forbidden"
    http_status = 403


class RateLimited(ChatRelayError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(ChatRelayError):
    code = "unavailable"
    http_status = 503


class ModelError(ChatRelayError):
    code = "model_error"
    http_status = 502


class EngineError(ChatRelayError):
    code = "unavailable"
    http_status = 503


class LeaseLost(EngineError):
    code = "lease_lost"
    http_status = 409


class NotAuthenticated(ChatRelayError):
    """The request names no acceptable user (close 4401 / HTTP 401)."""

    code = "not_authenticated"
    http_status = 401


class HandshakeRefused(Exception):
    """A socket is refused before its welcome; the gateway closes it with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
