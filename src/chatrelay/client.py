"""A Python client for chatrelay's WebSocket protocol, with resume.

The client remembers the session's epoch and the last offset it saw. When
the connection drops, it reconnects with exponential backoff and full jitter
(0.5 s doubling up to 20 s, a random wait below that) and sends ``resume``,
so the frames it hands out have no gap and no repeat: every ``message``,
``chunk`` and ``complete`` exactly once, in offset order. When the server
answers ``reset`` (the log from our position is gone), the ``reset`` frame is
handed out and the caller reloads history over REST. A ``snapshot`` (the
text of an answer still streaming, instead of a replay of its chunks) is
handed out too and moves the offset to its own.

The client asks for coalesced chunks (``coalesce=1``, v1.1): when it reads
more slowly than an answer streams, the server may send several chunks of
one answer as one ``chunk`` frame covering ``from_offset`` .. ``offset``
(its ``delta`` is theirs joined). Such a frame is handed out as it is, once,
like any chunk; ``coalesce=False`` keeps one frame per chunk.

Outside dev mode a socket authenticates with a one-time ticket: give the
client a ``ticket_provider`` (an async callable answering a :class:`Ticket`,
typically from ``POST /api/ws-ticket``); it fetches a new ticket for every
connect, and, when the credential behind it expires, sends a ``refresh``
frame with a fresh one :data:`REFRESH_MARGIN_SECONDS` before it does.

Each connection is read by a :class:`~chatrelay.wire_client.WireClient`,
which parses the frames; this class adds the reconnects and the exactly-once
bookkeeping across them. Used by the tests, the benchmarks and ``chatrelay chat``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import NamedTuple

from websockets.exceptions import ConnectionClosed, InvalidHandshake

from chatrelay.exceptions import ClientClosed, FrameError
from chatrelay.protocol.server_frames import ServerFrame
from chatrelay.wire_client import WireClient, first_offset, log_offset

logger = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 20.0
# Frames waiting for the caller; a caller that stops reading stops the reading.
INBOX_SIZE = 10_000
# Close codes after which reconnecting cannot help.
FINAL_CLOSE_CODES = frozenset({4400, 4401, 4403})
# A socket's credential is refreshed this long before it expires (a slow
# ticket fetch or a busy server still makes it in time).
REFRESH_MARGIN_SECONDS = 30.0


class Ticket(NamedTuple):
    """A one-time socket ticket, and when the credential it stands for expires (Unix s)."""

    value: str
    expires_at: float | None = None


TicketProvider = Callable[[], Awaitable[Ticket]]


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Full jitter: a random wait below ``min(cap, first * 2**attempt)``."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_FIRST_SECONDS * (2 ** min(attempt, 16)))
    return (rng or random).uniform(0, ceiling)


class ChatClient:
    """One session's socket that survives reconnects. Use as an async context manager."""

    def __init__(
        self,
        url: str,
        session_id: str | None = None,
        user_id: str | None = None,
        *,
        token: str | None = None,
        ticket_provider: TicketProvider | None = None,
        local_addr: tuple[str, int] | None = None,
        join: bool = False,
        snapshots: bool | None = None,
        coalesce: bool = True,
    ) -> None:
        self.url = url
        #: Ask for the session's log from its start on the first connection (a tab
        #: opening an existing session): an answer streaming comes as a ``snapshot``.
        self.join = join
        #: Take ``snapshot`` frames on resume (default: when joining); False keeps every
        #: chunk (a caller that audits chunk by chunk).
        self.snapshots = join if snapshots is None else snapshots
        #: Ask for coalesced chunks (several chunks of one answer in one frame when
        #: this client falls behind); False keeps one frame per chunk.
        self.coalesce = coalesce
        self.ticket_provider = ticket_provider
        self.session_id = session_id
        self.user_id = user_id
        self.token = token
        self.local_addr = local_addr
        self.epoch: str | None = None
        self.offset = 0
        self.node: str | None = None
        self.connects = 0
        self.resets = 0
        #: Log frames received again after a resume, and not handed out a second time.
        self.duplicates = 0
        #: Log frames that arrived ahead of a missing one (dropped, and asked for again in order).
        self.gaps = 0
        #: ``reconnect`` frames received, and the close code of every connection that ended.
        self.reconnect_frames = 0
        #: ``snapshot`` frames received (each part counts).
        self.snapshot_frames = 0
        #: Coalesced ``chunk`` frames received (each covering several offsets).
        self.coalesced_frames = 0
        self.close_codes: list[int | None] = []
        self._inbox: asyncio.Queue[ServerFrame | ClientClosed] = asyncio.Queue(INBOX_SIZE)
        self._connection: WireClient | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def __aenter__(self) -> ChatClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self, timeout: float = 10.0) -> None:
        """Connect (retrying with backoff) and wait for the first ``welcome``."""
        self._task = asyncio.create_task(self._run(), name="chatrelay-client")
        async with asyncio.timeout(timeout):
            while not self._connected.is_set():
                waiter = asyncio.ensure_future(self._connected.wait())
                done, _ = await asyncio.wait({waiter, self._task}, return_when="FIRST_COMPLETED")
                if self._task in done:
                    waiter.cancel()
                    self._task.result()
                    raise ClientClosed("the client stopped before connecting")

    async def close(self) -> None:
        self._closing = True
        if self._connection is not None:
            await self._connection.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClientClosed):
                await self._task

    # -- sending

    async def send(self, frame: Mapping[str, object], timeout: float = 30.0) -> None:
        """Send a frame, waiting (up to ``timeout``) for a connection if there is none."""
        async with asyncio.timeout(timeout):
            while True:
                await self._connected.wait()
                connection = self._connection
                if connection is None:
                    continue
                try:
                    await connection.send(frame)
                    return
                except ConnectionClosed:
                    self._connected.clear()

    async def chat(self, content: str, client_id: str | None = None) -> str:
        """Send a chat message; return its ``client_id`` (to match the echoed message)."""
        client_id = client_id or uuid.uuid4().hex[:16]
        await self.send({"type": "chat", "content": content, "client_id": client_id})
        return client_id

    async def cancel(self, message_id: str) -> None:
        await self.send({"type": "cancel", "message_id": message_id})

    # -- receiving

    async def receive(self, timeout: float | None = None) -> ServerFrame:
        """The next frame (log frames exactly once, in order); raises ClientClosed at the end."""
        async with asyncio.timeout(timeout):
            item = await self._inbox.get()
        if isinstance(item, ClientClosed):
            self._inbox.put_nowait(item)  # every later call sees the end too
            raise item
        return item

    async def frames(self) -> AsyncIterator[ServerFrame]:
        while True:
            try:
                yield await self.receive()
            except ClientClosed:
                return

    # -- the connection loop

    async def _query(self) -> tuple[dict[str, str], float | None]:
        """The next connect's query, and when its credential expires."""
        given = {
            "session_id": self.session_id,
            "user_id": self.user_id,
            "token": self.token,
            "coalesce": "1" if self.coalesce else None,
        }
        expires_at = None
        if self.ticket_provider is not None:
            given["ticket"], expires_at = await self.ticket_provider()
        return {key: value for key, value in given.items() if value}, expires_at

    async def _refresh(self, connection: WireClient, expires_at: float | None) -> None:
        """Send a fresh ticket before each credential expires (runs beside ``_serve``)."""
        assert self.ticket_provider is not None
        while expires_at is not None:
            await asyncio.sleep(max(0.0, expires_at - REFRESH_MARGIN_SECONDS - time.time()))
            ticket, expires_at = await self.ticket_provider()
            await connection.send({"type": "refresh", "ticket": ticket})

    async def _run(self) -> None:
        attempt = 0
        try:
            while not self._closing:
                try:
                    query, expires_at = await self._query()
                    # record=False: this client hands frames out; it keeps none.
                    connection = await WireClient.connect(
                        self.url, query, local_addr=self.local_addr, record=False
                    )
                except (OSError, InvalidHandshake, TimeoutError) as exc:
                    logger.info("connect failed (%s); retrying", exc)
                except FrameError as exc:
                    raise ClientClosed(exc.detail) from exc
                except ConnectionClosed as exc:  # refused right after the upgrade
                    self._note_close(exc)
                else:
                    attempt = 0  # a welcome came: the next failure backs off from the start
                    refresher = (
                        None
                        if self.ticket_provider is None
                        else asyncio.create_task(self._refresh(connection, expires_at))
                    )
                    try:
                        if await self._serve(connection):
                            continue  # asked to reconnect: no wait
                    except ConnectionClosed as exc:
                        self._note_close(exc)
                    except FrameError as exc:  # the server broke the protocol
                        raise ClientClosed(exc.detail) from exc
                    finally:
                        if refresher is not None:
                            refresher.cancel()
                            # A refresh that failed is answered by the server's close.
                            with contextlib.suppress(asyncio.CancelledError, Exception):
                                await refresher
                        self._connected.clear()
                        self._connection = None
                if self._closing:
                    break
                await asyncio.sleep(backoff_delay(attempt))
                attempt += 1
            self._inbox.put_nowait(ClientClosed("closed"))
        except ClientClosed as exc:
            self._inbox.put_nowait(exc)
            raise

    def _note_close(self, exc: ConnectionClosed) -> None:
        """Record how a connection ended; raise ClientClosed if reconnecting cannot help."""
        code = exc.rcvd.code if exc.rcvd else None
        self.close_codes.append(code)
        if code in FINAL_CLOSE_CODES:
            raise ClientClosed(f"refused: {exc.rcvd.reason if exc.rcvd else ''}", code) from exc

    async def _serve(self, connection: WireClient) -> bool:
        """Read one connection's frames until it closes (raising ``ConnectionClosed``);
        True if the server asked us to reconnect."""
        welcome = connection.welcome
        assert welcome is not None  # WireClient.connect read it
        self.connects += 1
        self.node = welcome["node"]
        self.session_id = welcome["session_id"]
        # The offset we last asked the server to resume after (None: never on this connection).
        asked_after: int | None = None
        # Another epoch: the answer to our resume is a reset, and log frames before it
        # are numbered in the new epoch, not ours; none of them may be handed out.
        stale = False
        if self.epoch is None and self.join:
            self.epoch, self.offset, asked_after = welcome["epoch"], 0, 0
            await connection.resume(self.epoch, asked_after, snapshot=self.snapshots)
        elif self.epoch is None:
            self.epoch, self.offset = welcome["epoch"], welcome["offset"]
        else:
            stale = welcome["epoch"] != self.epoch
            asked_after = self.offset
            await connection.resume(self.epoch, asked_after, snapshot=self.snapshots)
        self._connection = connection
        self._connected.set()
        while True:
            frame = await connection.recv(timeout=math.inf)
            offset = log_offset(frame)
            if offset is not None:
                if stale:
                    continue
                if offset <= self.offset:
                    self.duplicates += 1
                    continue  # already handed out
                first = first_offset(frame)
                assert first is not None
                if first <= self.offset:
                    # A coalesced frame covering offsets we hold and newer ones: its
                    # delta cannot be cut. The server never sends one (it folds only
                    # offsets a socket never sent); a new connection's resume from
                    # our offset brings the rest exactly.
                    logger.warning(
                        "a coalesced frame overlaps offset %d; reconnecting", self.offset
                    )
                    await connection.close()
                    self.close_codes.append(connection.close_code)
                    return True
                if first > self.offset + 1:
                    # A live event overtook the replay of what we missed (it was sent
                    # between welcome and our resume). Handing it out would skip its
                    # predecessors for good: drop it; the replay brings it in order.
                    self.gaps += 1
                    if asked_after != self.offset:
                        asked_after = self.offset
                        await connection.resume(self.epoch, asked_after, snapshot=self.snapshots)
                    continue
                if first != offset:
                    self.coalesced_frames += 1
                self.offset = offset
            elif frame["type"] == "snapshot":
                if stale or frame["offset"] < self.offset:
                    continue  # an older view of what we hold (or another epoch's)
                self.snapshot_frames += 1
                if frame["part"] == frame["parts"]:
                    self.offset = frame["offset"]  # the chunks up to it are in its text
            elif frame["type"] == "reset":
                stale = False
                self.resets += 1
                self.epoch, self.offset = frame["epoch"], frame["offset"]
            elif frame["type"] == "reconnect":
                self.reconnect_frames += 1
                await connection.close()
                self.close_codes.append(connection.close_code)
                return True
            await self._inbox.put(frame)
