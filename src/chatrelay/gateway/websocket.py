"""One browser socket: its handshake, its frames, its bounded send queue.

Frames to the client leave through one bounded queue and one writer task, so
a client that stops reading never blocks the relay or the other sockets of
its session: when the queue is full the socket is closed with a hint to
resume, and the client comes back for exactly what it missed.

Every event frame carries its session offset; a socket sends each offset at
most once and in order (``_last``), which is what makes resume and live
delivery meet without a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from chatrelay import metrics
from chatrelay.engine.base import Connection, Event
from chatrelay.engine.events import timestamp_of
from chatrelay.exceptions import ChatRelayError, EngineError, Forbidden, FrameError
from chatrelay.gateway.auth import NotAuthenticated
from chatrelay.gateway.services import GatewayServices
from chatrelay.protocol import (
    PONG_FRAME,
    CancelFrame,
    ChatFrame,
    PingFrame,
    ResumeFrame,
    error_frame,
    new_id,
    parse_client_frame,
    reconnect_frame,
    reset_frame,
    valid_session_id,
    welcome_frame,
)

logger = logging.getLogger(__name__)

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY = 4429
CLOSE_BAD_SESSION = 4400
CLOSE_TOO_SLOW = 4408
CLOSE_OVERLOADED = 1013
CLOSE_RESTARTING = 1012


class _Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class ChatSocket:
    """Serves one accepted WebSocket of one session until it closes."""

    def __init__(self, websocket: WebSocket, services: GatewayServices) -> None:
        self._ws = websocket
        self._services = services
        # (offset or 0 for frames outside the log, the frame's bytes)
        self._queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue(
            services.settings.send_queue_size
        )
        self._held: list[Event] | None = None  # live events waiting while we replay
        self._last = 0  # newest offset queued
        self._sent = 0  # newest offset written to the socket
        self._overflow = asyncio.Event()
        self._closing: tuple[int, str] | None = None
        self.session_id = ""
        self.user_id = ""

    # -- called by the relay (must not block)

    def deliver(self, event: Event) -> None:
        if self._held is not None:
            if len(self._held) >= self._queue.maxsize:
                self._overflow.set()
            else:
                self._held.append(event)
            return
        self._push(event)

    def reset(self, epoch: str, latest: int) -> None:
        if self._held is not None:
            self._held.clear()
        self._send_frame(reset_frame(epoch, latest))
        self._last = latest

    def _push(self, event: Event) -> None:
        if event.offset <= self._last:
            return
        self._last = event.offset
        self._enqueue(event.data, event.offset)

    def _enqueue(self, data: bytes, offset: int = 0) -> None:
        try:
            self._queue.put_nowait((offset, data))
        except asyncio.QueueFull:
            self._overflow.set()

    def _send_frame(self, frame: Mapping[str, object]) -> None:
        self._enqueue(orjson.dumps(frame))

    def send_reconnect(self, reason: str) -> None:
        """Tell the client to come back (elsewhere) and resume; close once that is sent."""
        self._send_frame(reconnect_frame(reason))
        self._closing = (CLOSE_RESTARTING, reason)
        self._enqueue(b"")  # the end: the writer stops after the frames before it

    def _hold(self) -> None:
        self._held = []

    def _release(self) -> None:
        held, self._held = self._held or [], None
        for event in held:
            self._push(event)

    # -- lifecycle

    async def serve(self) -> None:
        """Handshake, then relay and read until the socket closes."""
        await self._ws.accept()
        try:
            connection = await self._handshake()
        except _Closed as closed:
            await self._ws.close(closed.code, closed.reason)
            return
        services = self._services
        fields = {"node": services.node_id, "session_id": self.session_id, "user_id": self.user_id}
        try:
            await services.engine.registry.register(connection, services.settings.heartbeat_ttl)
            services.connections[connection.connection_id] = connection
            services.sockets.add(self)
            metrics.OPEN_SOCKETS.inc()
            self._hold()
            async with services.relay.attach(self.session_id, self):
                epoch, latest = await services.engine.broker.position(self.session_id)
                self._send_frame(welcome_frame(services.node_id, self.session_id,
                                               self.user_id, epoch, latest))
                self._last = latest
                self._release()
                logger.info("WebSocket connected", extra=fields)
                code, reason = await self._run()
        except EngineError as exc:
            code, reason = CLOSE_OVERLOADED, f"engine unavailable: {exc.detail}"[:120]
        finally:
            services.connections.pop(connection.connection_id, None)
            if self in services.sockets:
                services.sockets.discard(self)
                metrics.OPEN_SOCKETS.dec()
            with contextlib.suppress(EngineError):
                await services.engine.registry.unregister(connection)
        logger.info("WebSocket disconnected", extra={**fields, "code": code})
        if self._ws.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await self._ws.close(code, reason)

    async def _handshake(self) -> Connection:
        services = self._services
        if services.draining:
            raise _Closed(CLOSE_OVERLOADED, "this node is draining; connect again")
        query = self._ws.query_params
        try:
            self.user_id = services.auth.user_for(query, self._ws.headers)
        except NotAuthenticated as exc:
            raise _Closed(CLOSE_NOT_AUTHENTICATED, str(exc)) from exc
        self.session_id = query.get("session_id") or new_id()
        if not valid_session_id(self.session_id):
            raise _Closed(CLOSE_BAD_SESSION, "session_id must be 1 to 128 of [A-Za-z0-9_.:-]")
        try:
            await services.conversations.open(self.user_id, self.session_id)
            count = await services.engine.registry.user_connection_count(self.user_id)
        except Forbidden as exc:
            raise _Closed(CLOSE_FORBIDDEN, exc.detail) from exc
        except EngineError as exc:
            raise _Closed(CLOSE_OVERLOADED, "engine unavailable") from exc
        if count >= services.settings.max_connections_per_user:
            raise _Closed(CLOSE_TOO_MANY, "too many connections for this user")
        return Connection(uuid.uuid4().hex, self.session_id, self.user_id, services.node_id)

    async def _run(self) -> tuple[int, str]:
        reader = asyncio.create_task(self._read())
        writer = asyncio.create_task(self._write())
        overflow = asyncio.create_task(self._overflow.wait())
        tasks = {reader, writer, overflow}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if overflow in done:
            metrics.SEND_QUEUE_DROPS.inc()
            return CLOSE_TOO_SLOW, f"too slow; reconnect and resume from offset {self._sent}"
        return self._closing or (1000, "")

    async def _write(self) -> None:
        # The ASGI send itself: Starlette's wrapper re-checks its state machine on every
        # frame, which showed in profiles of the hot path (docs/benchmarks.md).
        send = self._ws._send
        queue = self._queue
        while True:
            offset, data = queue.get_nowait() if queue.qsize() else await queue.get()
            if not data:
                return  # the end marker of send_reconnect
            await send({"type": "websocket.send", "text": data.decode()})
            if offset:
                self._sent = offset
                metrics.observe_send(timestamp_of(data))

    async def _read(self) -> None:
        limit = self._services.settings.max_message_chars
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            try:
                frame = parse_client_frame(raw, limit)
            except FrameError as exc:
                self._send_frame(error_frame(exc.code, exc.detail, exc.client_id))
                continue
            await self._handle(frame)

    async def _handle(self, frame: ChatFrame | CancelFrame | ResumeFrame | PingFrame) -> None:
        conversations = self._services.conversations
        try:
            match frame:
                case PingFrame():
                    self._enqueue(PONG_FRAME)
                case ChatFrame(content=content, client_id=client_id):
                    try:
                        await conversations.send(self.user_id, self.session_id, content, client_id)
                    except ChatRelayError as exc:
                        self._send_frame(error_frame(exc.code, exc.detail, client_id=client_id))
                case CancelFrame(message_id=message_id):
                    try:
                        await conversations.cancel(self.user_id, self.session_id, message_id)
                    except ChatRelayError as exc:
                        self._send_frame(error_frame(exc.code, exc.detail, message_id=message_id))
                case ResumeFrame(epoch=epoch, offset=offset):
                    await self._resume(epoch, offset)
        except WebSocketDisconnect:
            raise
        except ChatRelayError as exc:
            self._send_frame(error_frame(exc.code, exc.detail))

    async def _resume(self, epoch: str, offset: int) -> None:
        """Replay the log after ``offset``, then carry on live; or tell the client to reset."""
        self._hold()
        try:
            history = await self._services.engine.broker.history(self.session_id, offset)
            if history.epoch != epoch or not history.complete or offset > history.latest:
                metrics.RESUMES.labels("reset").inc()
                self._send_frame(reset_frame(history.epoch, history.latest))
                self._last = max(self._last, history.latest)
                return
            metrics.RESUMES.labels("replay").inc()
            self._last = offset
            for event in history.events:
                # A replay may be longer than the queue: wait for room, don't drop.
                if event.offset > self._last:
                    self._last = event.offset
                    await self._queue.put((event.offset, event.data))
        finally:
            self._release()
