"""Text frames straight to the ASGI server, past Starlette's per-frame checks.

Starlette's ``WebSocket.send`` re-checks its state machine and wraps the call
in an error handler on every frame; on the relay's hot path that showed in
profiles (docs/benchmarks.md, "A first performance pass"). This is the one
place chatrelay touches Starlette's private ``_send``; its test proves the
frames are the ones ``send_text`` would have sent.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import Send
from starlette.websockets import WebSocket


class TextSender:
    """Sends text frames on an accepted WebSocket, as ``websocket.send_text`` would.

    Use it only after ``accept`` and before ``close``: unlike Starlette's
    wrapper it does not check the socket's state, and errors of the ASGI
    server (the client went away) reach the caller as the server raised them.
    """

    __slots__ = ("_send",)

    def __init__(self, websocket: WebSocket) -> None:
        self._send: Send = websocket._send

    def send_text(self, text: str) -> Awaitable[None]:
        """Send one text frame: await the result; cancel-safe like the server's own ``send``.

        A plain function returning the server's awaitable, not a coroutine of
        its own: one coroutine less per frame on the hot path.
        """
        return self._send({"type": "websocket.send", "text": text})
