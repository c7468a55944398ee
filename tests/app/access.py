"""A stand-in for a non-dev auth mode in the in-process app: the principal named in headers.

``X-Test-User`` (required), ``X-Test-Admin: 1`` and ``X-Test-Expires`` (Unix
seconds) become the :class:`Principal`; without ``X-Test-User`` the request is
not authenticated. The app runs with ``auth_mode="jwt"``, so sockets take
tickets only, exactly as in a real non-dev deployment.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import HTTPConnection

from chatrelay import app_factory
from chatrelay.auth.base import Authenticator, Principal
from chatrelay.engine.base import Engine
from chatrelay.exceptions import NotAuthenticated
from tests.app.asgi_socket import AsgiSocket, HandshakeRefused
from tests.app.inprocess import InProcessApp, running_app


class HeaderAuthenticator:
    """Trusts the ``X-Test-*`` headers (tests only)."""

    def authenticate(self, connection: HTTPConnection) -> Principal:
        user = connection.headers.get("x-test-user")
        if not user:
            raise NotAuthenticated("no credentials")
        expires = connection.headers.get("x-test-expires")
        return Principal(
            user,
            admin=connection.headers.get("x-test-admin") == "1",
            expires_at=None if expires is None else float(expires),
        )


def use_header_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every app built from now on authenticate with :class:`HeaderAuthenticator`."""
    use_authenticator(monkeypatch, HeaderAuthenticator())


def use_authenticator(monkeypatch: pytest.MonkeyPatch, authenticator: Authenticator) -> None:
    """Make every app built from now on authenticate with ``authenticator``."""

    def create(settings: object) -> Authenticator:
        return authenticator

    monkeypatch.setattr(app_factory, "create_authenticator", create)


def as_user(user: str, *, admin: bool = False, lifetime: float | None = None) -> dict[str, str]:
    """The headers of ``user`` (an administrator if ``admin``), expiring in ``lifetime`` s."""
    headers = {"X-Test-User": user}
    if admin:
        headers["X-Test-Admin"] = "1"
    if lifetime is not None:
        headers["X-Test-Expires"] = str(time.time() + lifetime)
    return headers


async def ticket(app: InProcessApp, headers: dict[str, str]) -> str:
    """A fresh socket ticket for the caller of ``headers``."""
    response = await app.http.post("/api/ws-ticket", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == 30
    value: str = body["ticket"]
    return value


async def refusal(app: InProcessApp, headers: dict[str, str] | None = None, **query: str) -> int:
    """The close code of a socket the server closes before or right after accepting it."""
    socket = AsgiSocket(app.app, "/ws/chat", query, headers=headers)
    try:
        await socket.open()
    except HandshakeRefused:  # closed before accept (a 403 over a network)
        assert socket.close_code is not None
        return socket.close_code
    await socket.wait_closed()
    assert socket.close_code is not None
    return socket.close_code


class SharedEngine(Engine):
    """An engine several in-process apps share: their shutdown leaves it open."""

    async def aclose(self) -> None:
        pass  # the test that made it closes it


@asynccontextmanager
async def access_app(
    database: Path, engine: Engine | None = None, **overrides: Any
) -> AsyncIterator[InProcessApp]:
    """An in-process app in a non-dev mode (call :func:`use_header_auth` first)."""
    async with running_app(database, engine, auth_mode="jwt", **overrides) as app:
        yield app
