"""ASGI middleware every chatrelay service runs in front of its routes.

- :class:`RequestIds` gives each request an id (``X-Request-Id`` on the
  answer, ``request_id`` on its log records) and is the last error boundary:
  an unhandled error becomes one log record naming its type and the request
  id, and a 500 body that says nothing internal.
- :class:`BodyLimit` refuses a request body over the limit with 413 before
  the app reads it: a ``Content-Length`` over the limit is refused up front,
  a chunked body is counted as it streams and cut at the limit.
"""

from __future__ import annotations

import contextlib
import logging
import uuid

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatrelay import logs

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
# WebSocket close code for "the server met an unexpected condition" (RFC 6455).
CLOSE_INTERNAL_ERROR = 1011


async def _send_json(
    send: Send, status: int, body: dict[str, str], extra: list[tuple[bytes, bytes]]
) -> None:
    content = orjson.dumps(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


class RequestIds:
    """Names each request and catches what nothing else did (the outermost of ours)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        id_header = (REQUEST_ID_HEADER.lower().encode(), request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [*message.get("headers", []), id_header]
                message = {**message, "headers": headers}
            await send(message)

        token = logs.REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # One record: type, path, id and a plain traceback; never the locals
            # (they held the internal token and users' prompts: logs.py).
            logger.error(
                "unhandled error",
                exc_info=exc,
                extra={
                    "error": type(exc).__name__,
                    "path": scope.get("path", ""),
                    "request_id": request_id,
                },
            )
            if scope["type"] == "http" and not started:
                body = {"code": "internal", "detail": "internal error", "request_id": request_id}
                await _send_json(send, 500, body, [id_header])
            elif scope["type"] == "websocket":
                # Refuses the handshake, or closes an accepted socket as a server error;
                # a socket already gone has nothing left to tell.
                with contextlib.suppress(OSError, RuntimeError):
                    await send({"type": "websocket.close", "code": CLOSE_INTERNAL_ERROR})
        finally:
            logs.REQUEST_ID.reset(token)


class BodyTooLarge(Exception):
    """Raised inside the app's ``receive`` when a streamed body passes the limit."""


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413 ``too_large``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"the request body is larger than {self.max_bytes} bytes"
        refusal = {"code": "too_large", "detail": detail}
        if self._declared_length(scope) > self.max_bytes:
            await _send_json(send, 413, refusal, [])
            return
        received = 0
        over = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    raise BodyTooLarge(detail)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # Whatever the app makes of the cut body (FastAPI answers 400), the client gets 413.
            if over:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            pass
        if over and not started:
            await _send_json(send, 413, refusal, [])

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0  # uvicorn refuses a malformed length before we see it
        return 0
