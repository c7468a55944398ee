"""The authorization matrix (``tests/authz_matrix.py``) on a real ``chatrelay serve`` in jwt mode.

Tokens are HS256 JWTs minted here with PyJWT, as an operator's login would;
sockets go over real WebSockets, so a refused upgrade is a real HTTP 403.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from chatrelay.client import ChatClient, Ticket
from tests.authz_matrix import (
    AUDIENCE,
    ISSUER,
    SECRET,
    ServerTarget,
    bearer,
    check,
    run_matrix,
    token,
)
from tests.fixtures.processes import Server, start_server
from tests.timing import seconds

JWT_ENV = {
    "CHATRELAY_AUTH_MODE": "jwt",
    "CHATRELAY_JWT_SECRET": SECRET,
    "CHATRELAY_JWT_AUDIENCE": AUDIENCE,
    "CHATRELAY_JWT_ISSUER": ISSUER,
}


@pytest.fixture
def jwt_server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path, JWT_ENV)
    try:
        yield running
    finally:
        running.process.stop()


@pytest.fixture
async def target(jwt_server: Server) -> AsyncIterator[ServerTarget]:
    async with httpx.AsyncClient(base_url=jwt_server.http, timeout=seconds(10)) as http:
        yield ServerTarget(jwt_server, http)


async def test_every_caller_gets_exactly_its_cell_on_as_session(target: ServerTarget) -> None:
    check(await run_matrix(target))


async def test_a_foreign_origin_upgrade_is_an_http_403(target: ServerTarget) -> None:
    issued = await target.http.post("/api/ws-ticket", headers=bearer(token("alice")))
    url = f"{target.server.ws}?ticket={issued.json()['ticket']}"
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(url, origin=Origin("https://evil.example"))
    assert refused.value.response.status_code == 403
    # Refused before anything ran: the ticket still opens a same-origin socket.
    async with websockets.connect(url, origin=Origin(target.server.http)) as socket:
        welcome = orjson.loads(await socket.recv())
    assert (welcome["type"], welcome["user_id"]) == ("welcome", "alice")


async def test_chat_client_connects_with_tickets_from_its_provider(target: ServerTarget) -> None:
    issued: list[str] = []

    async def provider() -> Ticket:
        response = await target.http.post("/api/ws-ticket", headers=bearer(token("alice")))
        body = response.json()
        issued.append(body["ticket"])
        return Ticket(body["ticket"], body["expires_at"])

    async with ChatClient(target.server.ws, ticket_provider=provider) as client:
        await client.chat("hello there")
        async for frame in client.frames():
            if frame["type"] == "complete":
                assert frame["status"] == "completed"
                break
    assert len(issued) == 1 and client.connects == 1
