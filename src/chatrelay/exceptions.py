"""chatrelay's errors: those a client may be shown, and those of running processes.

Errors a client may be shown carry the machine-readable ``code`` of PROTOCOL.md::

    ChatRelayError            code, detail, http_status
    ├── InvalidMessage        invalid_message   422
    ├── Busy                  busy              409
    ├── NotFound              not_found         404
    ├── Forbidden             forbidden         403
    ├── RateLimited           rate_limited      429  (retry_after seconds)
    │   └── QuotaExceeded     quota_exceeded    429  (concurrent answers or daily tokens)
    ├── Unavailable           unavailable       503
    ├── ModelError            model_error       502  (a backend could not answer)
    ├── EngineError           unavailable       503  (the engine could not be reached)
    │   └── LeaseLost         lease_lost        409  (a fencing token is no longer current)
    └── NotAuthenticated      not_authenticated 401  (close 4401 on a socket)
        └── TokenExpired      token_expired     401  (a socket's credential ran out)

    HandshakeRefused          a socket refused before its welcome: close code and reason

Errors of the process harness (``harness/``) and the local cluster, shown to
an operator, never to a client::

    ProcessError (RuntimeError)   a child process could not be started or did not answer
    ├── MissingBinary             a program is not installed (names the Debian package)
    ├── ProcessExited             it exited while we waited for it (its log's tail)
    ├── ProcessNotReady           its health check did not pass in time
    └── ClusterError              ``chatrelay cluster up`` could not start the cluster

    ClientClosed                  the wire client's server refused it for good, or it was closed
    FrameError                    a frame breaks the protocol (``code``: the error frame's code)

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


class NotLatest(ChatRelayError):
    """The request names something the conversation has moved past (an older answer)."""

    code = "not_latest"
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


class QuotaExceeded(RateLimited):
    """The user's concurrent answers or daily tokens are used up; ``detail`` says until when."""

    code = "quota_exceeded"


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


class ProcessError(RuntimeError):
    """A child process could not be started or did not become healthy."""


class MissingBinary(ProcessError):
    """A program is not installed; ``package`` is the Debian package that has it."""

    def __init__(self, program: str, package: str) -> None:
        self.program = program
        self.package = package
        super().__init__(
            f"{program} not found on PATH (nor in /usr/sbin): "
            f"install the Debian package {package!r}: sudo apt-get install -y {package}"
        )


class ProcessExited(ProcessError):
    """A process exited while we waited for it to become healthy; the message quotes its log."""


class ProcessNotReady(ProcessError):
    """A process's health check did not pass within the timeout."""


class ClusterError(ProcessError):
    """The local cluster could not start; the message says why."""


class ClientClosed(Exception):
    """The server refused the wire client for good (auth, ownership), or ``close()`` was called."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code


class FrameError(Exception):
    """A frame that breaks the protocol; ``code`` is the error code to send.

    Not a :class:`ChatRelayError`: a bad frame is answered with an ``error``
    frame on the same socket, never with an HTTP status.
    """

    def __init__(self, code: str, detail: str, client_id: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_id = client_id


class NotAuthenticated(ChatRelayError):
    """The request names no acceptable user (close 4401 / HTTP 401)."""

    code = "not_authenticated"
    http_status = 401


class TokenExpired(NotAuthenticated):
    """A socket's credential expired and was not refreshed (an error frame, then close 4401)."""

    code = "token_expired"


class HandshakeRefused(Exception):
    """A socket is refused before its welcome; the gateway closes it with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
