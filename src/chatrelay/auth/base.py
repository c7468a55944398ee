"""Who is calling: the interface every authentication mode implements.

A mode reads a request (REST) or an upgrade (WebSocket) and answers with the
:class:`Principal` making it, or raises
:class:`~chatrelay.exceptions.NotAuthenticated`. The gateway never takes a
user id from anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from starlette.requests import HTTPConnection


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``expires_at`` (Unix seconds) is when the credential it came from stops
    being valid, or None when it does not expire (dev mode).
    """

    user_id: str
    admin: bool = False
    expires_at: float | None = None


class Authenticator(Protocol):
    def authenticate(self, connection: HTTPConnection) -> Principal:
        """The caller of a request or a WebSocket upgrade; raises ``NotAuthenticated``."""
        ...
