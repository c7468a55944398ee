"""``AsgiSocket`` behaves like a ``websockets`` client connection, against a tiny app."""

from __future__ import annotations

import asyncio

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

from tests.app.asgi_socket import AsgiSocket, HandshakeRefused
from tests.timing import seconds, wait_until

FRAMES = 5


def tiny_app(sent: list[int], disconnected: asyncio.Event) -> Starlette:
    """Echoes ``hello`` with its query, sends ``FRAMES`` numbered frames on ``count``,
    closes 4000 on ``bye``, refuses ``?refuse=1``."""

    async def endpoint(websocket: WebSocket) -> None:
        if websocket.query_params.get("refuse"):
            await websocket.close(4401, "no")
            return
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                if text == "hello":
                    await websocket.send_text(f"hello {websocket.query_params['name']}")
                elif text == "count":
                    for n in range(FRAMES):
                        await websocket.send_text(str(n))
                        sent.append(n)
                elif text == "bye":
                    await websocket.close(4000, "bye")
                    return
        except WebSocketDisconnect:
            disconnected.set()

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


@pytest.fixture
def sent() -> list[int]:
    return []


@pytest.fixture
def disconnected() -> asyncio.Event:
    return asyncio.Event()


async def test_frames_go_both_ways_and_a_server_close_is_connection_closed(
    sent: list[int], disconnected: asyncio.Event
) -> None:
    socket = AsgiSocket(tiny_app(sent, disconnected), "/ws", {"name": "ada"})
    await socket.open()
    await socket.send("hello")
    assert await socket.recv() == "hello ada"
    await socket.send("bye")
    with pytest.raises(ConnectionClosedError) as closed:
        await socket.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "bye")
    assert (socket.close_code, socket.close_reason) == (4000, "bye")


async def test_a_client_close_reaches_the_app_as_a_disconnect(
    sent: list[int], disconnected: asyncio.Event
) -> None:
    socket = AsgiSocket(tiny_app(sent, disconnected), "/ws", {"name": "ada"})
    await socket.open()
    await socket.close()
    assert disconnected.is_set()
    with pytest.raises(ConnectionClosedOK):
        await socket.recv()


async def test_a_client_that_does_not_read_holds_the_apps_send(
    sent: list[int], disconnected: asyncio.Event
) -> None:
    socket = AsgiSocket(tiny_app(sent, disconnected), "/ws", {"name": "ada"}, max_queue=1)
    await socket.open()
    await socket.send("count")
    await wait_until(lambda: bool(sent), "the app sent its first frame", seconds(5))
    for _ in range(FRAMES):
        await asyncio.sleep(0)  # let the app run: it stays blocked on the second send
    assert sent == [0]
    assert [await socket.recv() for _ in range(FRAMES)] == [str(n) for n in range(FRAMES)]
    await socket.close()


async def test_a_close_before_accept_is_a_refused_handshake(
    sent: list[int], disconnected: asyncio.Event
) -> None:
    socket = AsgiSocket(tiny_app(sent, disconnected), "/ws", {"refuse": "1"})
    with pytest.raises(HandshakeRefused, match="4401"):
        await socket.open()
