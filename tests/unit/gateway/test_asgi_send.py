"""TextSender sends exactly what Starlette's ``send_text`` sends, in a tiny in-process app."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from chatrelay.gateway.asgi_send import TextSender

FRAMES = ['{"type":"chunk","offset":1,"delta":"héllo ✓"}', "", "x" * 70_000]


class RecordSends:
    """ASGI middleware keeping every message the app hands the server, per path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.sent: dict[str, list[Message]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        messages = self.sent.setdefault(scope["path"], [])

        async def recording_send(message: Message) -> None:
            messages.append(message)
            await send(message)

        await self.app(scope, receive, recording_send)


async def through_starlette(websocket: WebSocket) -> None:
    await websocket.accept()
    for frame in FRAMES:
        await websocket.send_text(frame)
    await websocket.close()


async def through_adapter(websocket: WebSocket) -> None:
    await websocket.accept()
    sender = TextSender(websocket)
    for frame in FRAMES:
        await sender.send_text(frame)
    await websocket.close()


def test_frames_match_starlettes_send_text() -> None:
    app = RecordSends(
        Starlette(
            routes=[
                WebSocketRoute("/starlette", through_starlette),
                WebSocketRoute("/adapter", through_adapter),
            ]
        )
    )
    received: dict[str, list[str]] = {}
    with TestClient(app) as client:
        for path in ("/starlette", "/adapter"):
            with client.websocket_connect(path) as websocket:
                received[path] = [websocket.receive_text() for _ in FRAMES]
    assert received["/adapter"] == received["/starlette"] == FRAMES
    assert app.sent["/adapter"] == app.sent["/starlette"]
    assert {"type": "websocket.send", "text": FRAMES[0]} in app.sent["/adapter"]
