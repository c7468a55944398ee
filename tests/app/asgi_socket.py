"""A WebSocket client that talks to an ASGI app in the same event loop, no network.

``AsgiSocket`` speaks the ASGI WebSocket protocol to the app the way uvicorn
does, and offers the client side the same calls as a ``websockets``
``ClientConnection``: ``send(str)``, ``recv() -> str | bytes``, ``close()``,
``close_code``, ``close_reason``, and ``ConnectionClosed`` (with ``rcvd``) once
the server has closed. So the tests' wire client runs over it unchanged.

``max_queue`` bounds the frames the client holds unread, as in ``websockets``:
while that many wait, the app's ``send`` blocks, which is how a client that
stops reading looks to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlencode

from starlette.types import ASGIApp
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Close

from tests.timing import seconds

Message = MutableMapping[str, Any]
# What the server sends when the client vanishes without a close frame.
CLOSE_ABNORMAL = 1006
CLOSE_NORMAL = 1000


class HandshakeRefused(Exception):
    """The app closed the socket before accepting it (an HTTP 403 over a real network)."""


class AsgiSocket:
    """One client connection to ``app``; the app runs in a task this object owns."""

    def __init__(
        self,
        app: ASGIApp,
        path: str,
        query: dict[str, str],
        headers: dict[str, str] | None = None,
        max_queue: int | None = None,
    ) -> None:
        self._scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": ("testserver", 80),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": urlencode(query).encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "subprotocols": [],
        }
        self._app = app
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        # None or 0: unbounded, like websockets' max_queue=None.
        self._to_client: asyncio.Queue[str | bytes | None] = asyncio.Queue(max_queue or 0)
        self._accepted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None

    async def open(self) -> None:
        """Run the app and wait for it to accept; raise ``HandshakeRefused`` if it does not."""
        self._task = asyncio.create_task(self._run_app(), name="asgi-websocket-app")
        await self._to_app.put({"type": "websocket.connect"})
        accepted = asyncio.create_task(self._accepted.wait())
        async with asyncio.timeout(seconds(10)):
            await asyncio.wait({accepted, self._task}, return_when=asyncio.FIRST_COMPLETED)
        accepted.cancel()
        if not self._accepted.is_set():
            if self._task.done():
                self._task.result()  # the app failed: its error, not a refusal
            raise HandshakeRefused(f"closed before accept: {self.close_code} {self.close_reason}")

    async def _run_app(self) -> None:
        try:
            await self._app(self._scope, self._to_app.get, self._from_app)
        finally:
            if self.close_code is None:
                self._server_closed(CLOSE_ABNORMAL, "")

    async def _from_app(self, message: Message) -> None:
        if self.close_code is not None:
            raise OSError("the client is gone")  # what uvicorn raises (ClientDisconnected)
        kind = message["type"]
        if kind == "websocket.accept":
            self._accepted.set()
        elif kind == "websocket.send":
            text = message.get("text")
            await self._to_client.put(text if text is not None else message["bytes"])
        elif kind == "websocket.close":
            self._server_closed(message.get("code", CLOSE_NORMAL), message.get("reason") or "")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    def _server_closed(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        # The app's next receive() learns the close handshake is over.
        self._to_app.put_nowait({"type": "websocket.disconnect", "code": code})
        with contextlib.suppress(asyncio.QueueFull):
            self._to_client.put_nowait(None)  # wakes a reader; a full queue is read first

    async def send(self, message: str | bytes) -> None:
        """Send one frame; raise ``ConnectionClosed`` once the connection is closed."""
        self._raise_if_closed()
        key = "text" if isinstance(message, str) else "bytes"
        await self._to_app.put({"type": "websocket.receive", key: message})

    async def recv(self) -> str | bytes:
        """The next frame; raise ``ConnectionClosed`` once the server closed and all is read."""
        if self._to_client.empty():
            self._raise_if_closed()
        message = await self._to_client.get()
        if message is None:
            self._raise_if_closed()
            raise AssertionError("woken without a close")  # pragma: no cover
        return message

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close from the client side and wait for the app to finish the socket."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            await self._to_app.put({"type": "websocket.disconnect", "code": code})
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the app's handler for this socket has returned."""
        if self._task is not None:
            async with asyncio.timeout(seconds(10)):
                await asyncio.shield(self._task)

    def _raise_if_closed(self) -> None:
        if self.close_code is None:
            return
        rcvd = Close(self.close_code, self.close_reason or "")
        if self.close_code in (CLOSE_NORMAL, 1001):
            raise ConnectionClosedOK(rcvd, None)
        raise ConnectionClosedError(rcvd, None)


__all__ = ["AsgiSocket", "ConnectionClosed", "HandshakeRefused"]
