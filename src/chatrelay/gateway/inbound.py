"""What a socket receives: client frames, parsed and routed.

``chat`` and ``cancel`` go to the conversation rules (``chats.py``),
``resume`` replays the session's log into the outbound queue (the answer
streaming as a ``snapshot``: ``snapshots.py``), ``ping`` is
answered with ``pong``, ``refresh`` renews the socket's credential
(``credentials.py``; refused, the socket ends with ``token_expired`` and
4401). Every frame is handled inside its own error
boundary: a frame that breaks the protocol, a request the rules refuse, or
an error nobody expected is answered with an ``error`` frame carrying its
code, and the socket carries on reading. Frames past the socket's budget
(``throttle.py``) are answered with ``rate_limited``; a client that keeps
sending regardless is closed.

Resumes are handled one at a time, in arrival order (the reader awaits each
replay), so a socket never has two in flight; ``Outbound.replay`` sends no
offset twice.

A socket welcomed to a session nobody owns yet (``owned=False``) sees no
event of it until the session is found to be its user's: after its own
first accepted chat, or when its session's first events arrive (claimed by
the user on another socket) or its next frame comes. Claimed by someone
else, the socket is closed with 4403: nobody eavesdrops on a session by
opening its id before its owner's first chat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from starlette.types import Message

from chatrelay import metrics
from chatrelay.exceptions import (
    ChatRelayError,
    FrameError,
    HandshakeRefused,
    NotAuthenticated,
    TokenExpired,
)
from chatrelay.gateway import close_codes
from chatrelay.gateway.chats import Conversations
from chatrelay.gateway.credentials import SocketCredential
from chatrelay.gateway.outbound import Outbound
from chatrelay.gateway.snapshots import Snapshots
from chatrelay.gateway.throttle import FrameThrottle
from chatrelay.protocol.client_frames import (
    CancelFrame,
    ChatFrame,
    ClientFrame,
    PingFrame,
    RefreshFrame,
    ResumeFrame,
    parse_client_frame,
)
from chatrelay.protocol.server_frames import PONG_FRAME, error_frame, reset_frame

logger = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[Message]]


class Inbound:
    """Reads one socket's frames and does what each asks, in arrival order."""

    __slots__ = (
        "_claim_check",
        "_conversations",
        "_credential",
        "_limit",
        "_max_frame_bytes",
        "_outbound",
        "_owned",
        "_recheck",
        "_session_id",
        "_snapshots",
        "_throttle",
    )

    def __init__(
        self,
        *,
        credential: SocketCredential,
        session_id: str,
        conversations: Conversations,
        snapshots: Snapshots,
        outbound: Outbound,
        throttle: FrameThrottle,
        max_message_chars: int,
        max_frame_bytes: int,
        owned: bool = True,
    ) -> None:
        self._credential = credential
        self._session_id = session_id
        self._conversations = conversations
        self._snapshots = snapshots
        self._outbound = outbound
        self._throttle = throttle
        self._limit = max_message_chars
        self._max_frame_bytes = max_frame_bytes
        self._owned = owned
        self._claim_check: asyncio.Task[None] | None = None
        self._recheck = False

    async def read(self, receive: Receive) -> None:
        """Handle frames from ``receive`` (the ASGI receive) until the client disconnects,
        floods, or is found on someone else's session (``Outbound.close_reason`` says)."""
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            if _too_big(raw, self._max_frame_bytes):
                # Checked here, not only by uvicorn: a close from the app is a full close
                # handshake, so the client reads 1009 instead of a reset connection.
                self._outbound.close_with(close_codes.MESSAGE_TOO_BIG, "frame too large")
                return
            wait = self._throttle.take()
            if wait:
                if self._throttle.flooding:
                    self._outbound.close_with(close_codes.FLOODING, "too many frames")
                    return
                detail = f"too many frames; retry in {wait:.1f} s"
                self._outbound.send_frame(error_frame("rate_limited", detail))
                continue
            try:
                await self.handle(raw)
            except HandshakeRefused as refused:
                self._outbound.close_with(refused.code, refused.reason)
                return

    async def handle(self, raw: str | bytes) -> None:
        """Handle one client frame; bad input is answered with an error frame, never raised.

        Raises ``HandshakeRefused`` only when the socket must close: its
        session turned out to be someone else's.
        """
        try:
            frame = parse_client_frame(raw, self._limit)
            if not self._owned:
                await self._check_claim()
            await self._route(frame)
        except FrameError as exc:
            self._outbound.send_frame(error_frame(exc.code, exc.detail, exc.client_id))
        except ChatRelayError as exc:
            self._outbound.send_frame(error_frame(exc.code, exc.detail))
        except HandshakeRefused:
            raise
        except Exception as exc:
            # One record, its type only: a traceback's locals may hold a user's message.
            logger.error(
                "client frame failed: %s",
                type(exc).__name__,
                extra={"session_id": self._session_id, "user_id": self._user_id},
            )
            self._outbound.send_frame(error_frame("internal", "the frame could not be handled"))

    def watch_claim(self) -> None:
        """On a socket not owned at its welcome: each time its session's events arrive, find
        out whose it is (one check at a time, no task while nothing arrives); release them
        if this user's, close the socket (4403) if not. ``stop`` ends the watch."""
        self._outbound.on_held = self._held_event

    async def stop(self) -> None:
        """Stop a claim check in flight (the socket ended)."""
        check, self._claim_check = self._claim_check, None
        if check is not None:
            check.cancel()
            await asyncio.gather(check, return_exceptions=True)

    def _held_event(self) -> None:
        if self._owned:
            return
        if self._claim_check is None:
            self._claim_check = asyncio.create_task(self._check_claims())
        else:
            self._recheck = True  # events came while a check was in flight

    async def _check_claims(self) -> None:
        try:
            self._recheck = True
            while self._recheck and not self._owned:
                self._recheck = False
                await self._check_claim()
        except HandshakeRefused as refused:
            self._outbound.close_with(refused.code, refused.reason)
        except Exception as exc:
            # The next event or frame checks again.
            logger.warning("claim check failed: %s", type(exc).__name__)
        finally:
            self._claim_check = None

    async def _check_claim(self) -> None:
        """Whether the session this socket waits on was claimed since its welcome, and by whom."""
        owner = await self._conversations.owner(self._session_id)
        if owner is None:
            return
        if owner != self._user_id:
            raise HandshakeRefused(close_codes.FORBIDDEN, "this session belongs to another user")
        self._claimed()

    @property
    def _user_id(self) -> str:
        return self._credential.principal.user_id

    def _claimed(self) -> None:
        if not self._owned:
            self._owned = True
            self._outbound.release()

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
                    return
                if not self._owned:
                    self._claimed()
            case CancelFrame(message_id=message_id):
                try:
                    await conversations.cancel(user, session, message_id)
                except ChatRelayError as exc:
                    self._outbound.send_frame(
                        error_frame(exc.code, exc.detail, message_id=message_id)
                    )
            case ResumeFrame(epoch=epoch, offset=offset, snapshot=snapshot):
                # An unclaimed session has no log to replay (events follow a claim).
                if self._owned:
                    await self._resume(epoch, offset, snapshot)
            case RefreshFrame(ticket=ticket):
                try:
                    await self._credential.refresh(ticket)
                except NotAuthenticated as exc:
                    # PROTOCOL: a failed refresh ends the socket as an expiry would.
                    detail = f"refresh refused: {exc.detail}"
                    self._outbound.send_frame(error_frame(TokenExpired.code, detail))
                    self._outbound.close_with(close_codes.NOT_AUTHENTICATED, "refresh refused")

    async def _resume(self, epoch: str, offset: int, snapshot: bool) -> None:
        """Replay the log after ``offset`` (the answer streaming as a snapshot, see
        ``snapshots.py``), then carry on live; or tell the client to reset."""
        outbound = self._outbound
        outbound.hold()
        try:
            plan = await self._snapshots.plan(
                self._session_id, epoch, outbound.queued_after(offset), snapshot=snapshot
            )
            if plan.reset is not None:
                metrics.RESUMES.labels("reset").inc()
                outbound.send_frame(reset_frame(*plan.reset))
                outbound.skip_to(plan.reset[1])
                return
            await outbound.replay(offset, plan.before)
            if plan.snapshot:
                await outbound.send_snapshot(plan.offset, plan.snapshot)
                await outbound.replay(plan.offset, plan.after)
        finally:
            outbound.release()


def _too_big(raw: str | bytes, limit: int) -> bool:
    """Whether a frame is over ``limit`` bytes, encoding only when the length can't tell."""
    if isinstance(raw, bytes) or len(raw) > limit or len(raw) * 4 <= limit:
        return len(raw) > limit  # UTF-8 takes 1 to 4 bytes a character
    return len(raw.encode("utf-8", "surrogatepass")) > limit
