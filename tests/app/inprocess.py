"""``chatrelay serve``'s app run inside the test's event loop: no process, no port.

The all-in-one app (memory engine, SQLite in a temp file, the simulated model)
is started through its own lifespan and driven through ``httpx.ASGITransport``
for REST and ``AsgiSocket`` for WebSockets, so a test of the relay, the socket
or the generation loop runs in milliseconds and needs no binary.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from chatrelay.app_factory import create_all_in_one_app
from chatrelay.config import Settings
from chatrelay.engine.base import Engine
from chatrelay.wire_client import WireClient
from tests.app.asgi_socket import AsgiSocket
from tests.timing import seconds

NODE_ID = "in-process"
# The simulated model's pause between words: the long answer (~190 words) streams
# for about two seconds, time enough to cancel it or ask for history mid-way.
CHUNK_DELAY = 0.01


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def new_session() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


@dataclass
class InProcessApp:
    """A running all-in-one app and the clients that reach it."""

    app: FastAPI
    settings: Settings
    http: httpx.AsyncClient
    _sockets: list[AsgiSocket] = field(default_factory=list)

    async def socket(
        self,
        max_queue: int | None = None,
        headers: dict[str, str] | None = None,
        **query: str,
    ) -> AsgiSocket:
        """An accepted WebSocket on ``/ws/chat?query`` (closed when the app stops)."""
        socket = AsgiSocket(self.app, "/ws/chat", query, headers=headers, max_queue=max_queue)
        self._sockets.append(socket)
        await socket.open()
        return socket

    async def connect(self, headers: dict[str, str] | None = None, **query: str) -> WireClient:
        """A protocol client on a new socket, its ``welcome`` read."""
        client = WireClient(await self.socket(headers=headers, **query), timeout=seconds(10))
        await client.read_welcome()
        return client

    async def history(self, session_id: str, user: str) -> list[dict[str, Any]]:
        """The stored messages of a session, as ``/api/history`` returns them."""
        response = await self.http.get(f"/api/history/{session_id}", params={"user_id": user})
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    async def _close_sockets(self) -> None:
        for socket in self._sockets:
            await socket.close()


def app_settings(database: Path, **overrides: Any) -> Settings:
    """The settings of an in-process app; ``overrides`` by field name."""
    values: dict[str, Any] = {
        "node_id": NODE_ID,
        "engine_url": "memory://",
        "database_url": f"sqlite+aiosqlite:///{database}",
        "model": "simulated",
        "chunk_delay": CHUNK_DELAY,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def running_app(
    database: Path, engine: Engine | None = None, **overrides: Any
) -> AsyncIterator[InProcessApp]:
    """Start the all-in-one app on ``database`` through its lifespan; stop it on exit.

    ``engine`` (e.g. ``tests.faulty_engine``'s) replaces the memory engine of the settings.
    """
    settings = app_settings(database, **overrides)
    app = create_all_in_one_app(settings, engine)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")
        )
        running = InProcessApp(app, settings, http)
        stack.push_async_callback(running._close_sockets)  # before the lifespan ends
        yield running
