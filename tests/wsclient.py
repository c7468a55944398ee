"""A thin WebSocket test client speaking the chatrelay protocol."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection

from tests.timing import seconds


@dataclass
class Turn:
    """What a client saw of one assistant message."""

    message_id: str
    chunks: list[dict[str, Any]] = field(default_factory=list)
    complete: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        return "".join(chunk["delta"] for chunk in self.chunks)


class WsClient:
    """One socket; records every frame it receives."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def connect(cls, ws_url: str, **query: str) -> WsClient:
        url = f"{ws_url}?{urlencode(query)}" if query else ws_url
        connection = await websockets.connect(url, max_size=None)
        client = cls(connection)
        client.welcome = await client.recv()
        assert client.welcome["type"] == "welcome", client.welcome
        return client

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.connection.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float | None = None) -> dict[str, Any]:
        async with asyncio.timeout(timeout or seconds(10)):
            frame: dict[str, Any] = json.loads(await self.connection.recv())
        self.frames.append(frame)
        return frame

    async def recv_type(self, *types: str, timeout: float | None = None) -> dict[str, Any]:
        """The next frame of one of ``types`` (frames of other types are recorded, skipped)."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] in types:
                return frame

    async def chat(self, content: str, client_id: str | None = None) -> str:
        """Send a chat; return the assistant message id from the stream."""
        frame: dict[str, Any] = {"type": "chat", "content": content}
        if client_id:
            frame["client_id"] = client_id
        await self.send(frame)
        while True:
            got = await self.recv_type("message", "error")
            if got["type"] == "error":
                raise AssertionError(f"chat refused: {got}")
            if got["message"]["role"] == "assistant":
                return str(got["message"]["id"])

    async def follow(self, message_id: str, timeout: float | None = None) -> Turn:
        """Read frames until the ``complete`` of ``message_id``."""
        turn = Turn(message_id)
        async with asyncio.timeout(timeout or seconds(30)):
            while True:
                frame = await self.recv()
                if frame.get("message_id") != message_id:
                    continue
                if frame["type"] == "chunk":
                    turn.chunks.append(frame)
                elif frame["type"] == "complete":
                    turn.complete = frame
                    return turn

    def offsets(self) -> list[int]:
        return [frame["offset"] for frame in self.frames if frame["type"] in ("message", "chunk", "complete")]

    async def close(self) -> None:
        await self.connection.close()
