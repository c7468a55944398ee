"""What a socket receives: client frames, parsed and routed.

``chat`` and ``cancel`` go to the conversation rules (``chats.py``),
``resume`` replays the session's log into the outbound queue, ``ping`` is
answered with ``pong``, ``refresh`` renews the socket's credential
(``credentials.py``). A frame that breaks the protocol, or a request the
rules refuse, is answered with an ``error`` frame carrying its code; the
socket carries on reading.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import Message

from chatrelay import metrics
from chatrelay.exceptions import ChatRelayError, FrameError, NotAuthenticated, TokenExpired
from chatrelay.gateway import close_codes
from chatrelay.gateway.chats import Conversations
from chatrelay.gateway.credentials import SocketCredential
from chatrelay.gateway.outbound import Outbound
from chatrelay.gateway.relay import Relay
from chatrelay.protocol import (
    PONG_FRAME,
    CancelFrame,
    ChatFrame,
    ClientFrame,
    PingFrame,
    RefreshFrame,
    ResumeFrame,
    error_frame,
    parse_client_frame,
    reset_frame,
)

Receive = Callable[[], Awaitable[Message]]


class Inbound:
    """Reads one socket's frames and does what each asks, in arrival order."""

    def __init__(
        self,
        *,
        credential: SocketCredential,
        session_id: str,
        conversations: Conversations,
        relay: Relay,
        outbound: Outbound,
        max_message_chars: int,
    ) -> None:
        self._credential = credential
        self._session_id = session_id
        self._conversations = conversations
        self._relay = relay
        self._outbound = outbound
        self._limit = max_message_chars

    async def read(self, receive: Receive) -> None:
        """Handle frames from ``receive`` (the ASGI receive) until the client disconnects."""
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            await self.handle(raw)

    async def handle(self, raw: str | bytes) -> None:
        """Handle one client frame; bad input is answered with an error frame, never raised."""
        try:
            frame = parse_client_frame(raw, self._limit)
        except FrameError as exc:
            self._outbound.send_frame(error_frame(exc.code, exc.detail, exc.client_id))
            return
        try:
            await self._route(frame)
        except ChatRelayError as exc:
            self._outbound.send_frame(error_frame(exc.code, exc.detail))

    async def _route(self, frame: ClientFrame) -> None:
        conversations, session = self._conversations, self._session_id
        user = self._credential.principal
        match frame:
            case PingFrame():
                self._outbound.send_encoded(PONG_FRAME)
            case ChatFrame(content=content, client_id=client_id):
                try:
                    await conversations.send(user, session, content, client_id)
                except ChatRelayError as exc:
                    self._outbound.send_frame(
                        error_frame(exc.code, exc.detail, client_id=client_id)
                    )
            case CancelFrame(message_id=message_id):
                try:
                    await conversations.cancel(user, session, message_id)
                except ChatRelayError as exc:
                    self._outbound.send_frame(
                        error_frame(exc.code, exc.detail, message_id=message_id)
                    )
            case ResumeFrame(epoch=epoch, offset=offset):
                await self._resume(epoch, offset)
            case RefreshFrame(ticket=ticket):
                try:
                    await self._credential.refresh(ticket)
                except NotAuthenticated as exc:
                    # PROTOCOL: a failed refresh ends the socket as an expiry would.
                    self._outbound.send_last(
                        error_frame(TokenExpired.code, f"refresh refused: {exc.detail}"),
                        close_codes.NOT_AUTHENTICATED,
                        "refresh refused",
                    )

    async def _resume(self, epoch: str, offset: int) -> None:
        """Replay the log after ``offset``, then carry on live; or tell the client to reset."""
        outbound = self._outbound
        outbound.hold()
        try:
            history = await self._relay.history(self._session_id, offset)
            if history.epoch != epoch or not history.complete or offset > history.latest:
                metrics.RESUMES.labels("reset").inc()
                outbound.send_frame(reset_frame(history.epoch, history.latest))
                outbound.skip_to(history.latest)
                return
            metrics.RESUMES.labels("replay").inc()
            await outbound.replay(offset, history.events)
        finally:
            outbound.release()
