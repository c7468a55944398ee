"""A real ``chatrelay serve`` over a real network: what only the running server shows.

The protocol, its errors, cancel, busy, history and REST are tested in process
(``tests/app``); here, the server that ``python -m chatrelay serve`` starts
answers a chat over a real socket and logs its connections (the listener's
limits: ``test_listener_limits.py``).
"""

from __future__ import annotations

import uuid

import httpx

from chatrelay.llm.simulated import choose_answer
from tests import wsclient
from tests.fixtures.processes import Server
from tests.timing import wait_until


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def new_session() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


async def test_serve_streams_a_chat_and_stores_it(server: Server) -> None:
    user, session = new_user(), new_session()
    client = await wsclient.connect(server.ws, session_id=session, user_id=user)
    assert (client.welcome["session_id"], client.welcome["user_id"]) == (session, user)

    turn = await client.follow(await client.chat("hello there", client_id="c-1"))

    assert turn.complete is not None and turn.complete["status"] == "completed"
    assert turn.text == turn.complete["content"] == choose_answer("hello there")
    assert client.offsets() == list(range(1, len(client.offsets()) + 1))
    async with httpx.AsyncClient(base_url=server.http) as http:
        response = await http.get(f"/api/history/{session}", params={"user_id": user})
    assert response.status_code == 200, response.text
    assert [(m["role"], m["content"]) for m in response.json()["messages"]] == [
        ("user", "hello there"),
        ("assistant", turn.text),
    ]
    await client.close()


async def test_connections_are_logged_with_node_session_and_user(server: Server) -> None:
    user, session = new_user(), new_session()
    client = await wsclient.connect(server.ws, session_id=session, user_id=user)
    await client.close()

    def lines_of(event: str) -> list[str]:
        return [
            line
            for line in server.process.log().splitlines()
            if event in line and f"session_id={session}" in line
        ]

    await wait_until(lambda: bool(lines_of("WebSocket disconnected")), "the disconnect logged")
    node = f"node=test-{server.port}"
    connected = lines_of("WebSocket connected")
    assert connected and node in connected[0] and f"user_id={user}" in connected[0]
    assert node in lines_of("WebSocket disconnected")[0]
