"""One reader of the wire: a connection's frames, parsed, numbered and gathered into turns.

:class:`WireClient` runs over any :class:`WireConnection` (a ``websockets``
connection from :meth:`WireClient.connect`, or an in-process transport in
tests). It keeps the session's epoch and the last log offset it saw, records
what it received and gathers each assistant message's chunks and ``complete``
into a :class:`Turn`. It does not reconnect: :class:`chatrelay.client.ChatClient`
does, one ``WireClient`` per connection.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, cast, get_args, get_type_hints
from urllib.parse import urlencode

import orjson
import websockets

from chatrelay.exceptions import FrameError
from chatrelay.protocol.server_frames import ChunkFrame, CompleteFrame, ServerFrame, WelcomeFrame

# How long one ``recv`` waits by default: a silent server is a failure, not a hang.
RECV_TIMEOUT_SECONDS = 10.0
# How long an opening handshake may take. In a reconnect storm the surviving
# gateway's queue of handshakes is long: a client that gives up at 10 s goes to
# the back of the queue after its backoff (bench/storm.py: 546 of 2,500 tabs did,
# p99 21 s to resume; with 60 s none did, p99 11 s).
OPEN_TIMEOUT_SECONDS = 30.0
# Read off the ServerFrame union, so a new frame type needs no second list.
SERVER_FRAME_TYPES = frozenset(
    get_args(get_type_hints(kind)["type"])[0] for kind in get_args(get_args(ServerFrame)[0])
)


def parse_server_frame(raw: str | bytes) -> ServerFrame:
    """Decode one server frame; checks only that it is an object of a known type.

    Cheap enough for a client reading thousands of chunks a second: the fields
    are trusted to follow the schema (``tests/unit/test_protocol.py`` holds the
    server to it). Raises :class:`FrameError` with ``bad_frame`` otherwise.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError("bad_frame", f"frame is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("type") not in SERVER_FRAME_TYPES:
        raise FrameError("bad_frame", f"not a server frame: {str(raw)[:80]}")
    return cast(ServerFrame, data)


def log_offset(frame: ServerFrame) -> int | None:
    """The session log offset of a ``message``, ``chunk`` or ``complete``; else None."""
    if frame["type"] == "message" or frame["type"] == "chunk" or frame["type"] == "complete":
        return frame["offset"]
    return None


def first_offset(frame: ServerFrame) -> int | None:
    """The first log offset a frame covers: a coalesced ``chunk``'s ``from_offset``
    (v1.1: it covers ``from_offset`` .. ``offset``), else as ``log_offset``."""
    if frame["type"] == "chunk":
        return frame.get("from_offset", frame["offset"])
    return log_offset(frame)


def chunk_seqs(frame: ChunkFrame) -> range:
    """The ``seq``s a chunk covers: ``from_seq`` .. ``seq`` for a coalesced one (v1.1)."""
    return range(frame.get("from_seq", frame["seq"]), frame["seq"] + 1)


class WireConnection(Protocol):
    """What the wire client needs of a connection: one text message in, one out."""

    async def send(self, message: str) -> None: ...

    async def recv(self) -> str | bytes:
        """The next message; raises when the connection is closed."""
        ...

    async def close(self) -> None: ...


@dataclass
class Turn:
    """What a client saw of one assistant message."""

    message_id: str
    chunks: list[ChunkFrame] = field(default_factory=list)
    complete: CompleteFrame | None = None
    #: The text a ``snapshot`` brought (its parts joined); ``chunks`` are those after it.
    snapshot: str = ""
    #: ``snapshot`` frames received for this message (parts counted one by one).
    snapshot_frames: int = 0

    @property
    def text(self) -> str:
        return self.snapshot + "".join(chunk["delta"] for chunk in self.chunks)


def gather_turn(turns: dict[str, Turn], frame: ServerFrame) -> None:
    """Add ``frame`` to the turn of its assistant message (other frames change nothing)."""
    if frame["type"] == "message" and frame["message"]["role"] == "assistant":
        turns.setdefault(frame["message"]["id"], Turn(frame["message"]["id"]))
    elif frame["type"] == "chunk":
        turns.setdefault(frame["message_id"], Turn(frame["message_id"])).chunks.append(frame)
    elif frame["type"] == "complete":
        turns.setdefault(frame["message_id"], Turn(frame["message_id"])).complete = frame
    elif frame["type"] == "snapshot":
        turn = turns.setdefault(frame["message_id"], Turn(frame["message_id"]))
        if frame["part"] == 1:  # the text so far replaces whatever came before it
            turn.snapshot, turn.chunks = "", []
        turn.snapshot += frame["text"]
        turn.snapshot_frames += 1


class WireClient:
    """One connection's frames: ``welcome`` first, then parsed frames, recorded in order.

    ``offset`` is the newest log offset seen (``welcome``'s, then each log
    frame's, ``reset``'s); a log frame at or below it is a repeat: recorded in
    ``frames``, counted in ``duplicates``, left out of the turns. With
    ``record=False`` nothing is kept but the epoch and the offset (a long-lived
    client).
    """

    def __init__(
        self,
        connection: WireConnection,
        *,
        timeout: float = RECV_TIMEOUT_SECONDS,
        record: bool = True,
    ) -> None:
        self.connection = connection
        self.timeout = timeout
        self.record = record
        self.frames: list[ServerFrame] = []
        self.turns: dict[str, Turn] = {}
        self.welcome: WelcomeFrame | None = None
        self.epoch: str | None = None
        self.offset = 0
        self.duplicates = 0

    @classmethod
    async def connect(
        cls,
        url: str,
        query: Mapping[str, str] | None = None,
        *,
        local_addr: tuple[str, int] | None = None,
        timeout: float = RECV_TIMEOUT_SECONDS,
        record: bool = True,
    ) -> WireClient:
        """Open a WebSocket to ``url`` (with ``query``) and read its ``welcome``.

        Raises what ``websockets.connect`` raises (``InvalidHandshake``,
        ``OSError``, ``TimeoutError``), ``ConnectionClosed`` when the server
        refuses the socket, and :class:`FrameError` when the first frame is
        not a ``welcome``.
        """
        target = f"{url}?{urlencode(query)}" if query else url
        connection = await websockets.connect(
            target, max_size=None, local_addr=local_addr, open_timeout=OPEN_TIMEOUT_SECONDS
        )
        client = cls(connection, timeout=timeout, record=record)
        try:
            await client.read_welcome()
        except BaseException:
            await connection.close()
            raise
        return client

    async def read_welcome(self) -> WelcomeFrame:
        """Read the first frame, which must be ``welcome``; it sets epoch and offset."""
        frame = await self.recv()
        if frame["type"] != "welcome":
            raise FrameError("bad_frame", f"expected welcome, got {frame['type']}")
        return frame

    # -- sending

    async def send(self, frame: Mapping[str, object] | str) -> None:
        """Send a client frame (a mapping is JSON-encoded; a string goes as it is)."""
        await self.connection.send(
            frame if isinstance(frame, str) else orjson.dumps(frame).decode()
        )

    async def chat(self, content: str, client_id: str | None = None) -> str:
        """Send a chat; return the id of the assistant message that answers it.

        Raises ``AssertionError`` if an ``error`` frame comes first.
        """
        frame: dict[str, object] = {"type": "chat", "content": content}
        if client_id:
            frame["client_id"] = client_id
        await self.send(frame)
        while True:
            got = await self.recv_type("message", "error")
            if got["type"] == "error":
                raise AssertionError(f"chat refused: {got}")
            if got["type"] == "message" and got["message"]["role"] == "assistant":
                return got["message"]["id"]

    async def resume(self, epoch: str, offset: int, *, snapshot: bool = False) -> None:
        """Ask for every log event after ``offset`` of ``epoch`` (``snapshot``: the
        answer streaming may come as a ``snapshot`` frame instead of its chunks)."""
        frame: dict[str, object] = {"type": "resume", "epoch": epoch, "offset": offset}
        if snapshot:
            frame["snapshot"] = True
        await self.send(frame)

    async def cancel(self, message_id: str) -> None:
        await self.send({"type": "cancel", "message_id": message_id})

    # -- receiving

    async def recv(self, timeout: float | None = None) -> ServerFrame:
        """The next frame, parsed and recorded.

        Raises ``TimeoutError`` after ``timeout`` (``math.inf``: wait as long as
        it takes), :class:`FrameError` for a message that is not a server frame,
        and whatever the connection raises once it is closed. Cancel-safe only
        if the connection's ``recv`` is (``websockets``' is).
        """
        limit = timeout or self.timeout
        async with asyncio.timeout(None if limit == math.inf else limit):
            raw = await self.connection.recv()
        frame = parse_server_frame(raw)
        self._track(frame)
        return frame

    async def recv_type(self, *types: str, timeout: float | None = None) -> ServerFrame:
        """The next frame of one of ``types`` (frames of other types are recorded, skipped)."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] in types:
                return frame

    async def follow(self, message_id: str, timeout: float | None = None) -> Turn:
        """Read until the ``complete`` of ``message_id``; its turn (chunks seen so far too).

        ``timeout`` bounds the whole wait; without it, each frame's wait is bounded.
        """
        async with asyncio.timeout(timeout):
            while (turn := self.turns.get(message_id)) is None or turn.complete is None:
                await self.recv()
        return turn

    def offsets(self) -> list[int]:
        """The offsets of the log frames received, in arrival order (repeats included)."""
        return [offset for frame in self.frames if (offset := log_offset(frame)) is not None]

    async def close(self) -> None:
        await self.connection.close()

    @property
    def close_code(self) -> int | None:
        """How the connection ended, when its transport says (``websockets`` does)."""
        code = getattr(self.connection, "close_code", None)
        return code if isinstance(code, int) else None

    def _track(self, frame: ServerFrame) -> None:
        if self.record:
            self.frames.append(frame)
        if frame["type"] == "welcome":
            self.welcome = frame
            self.epoch, self.offset = frame["epoch"], frame["offset"]
        elif frame["type"] == "reset":
            self.epoch, self.offset = frame["epoch"], frame["offset"]
        elif frame["type"] == "snapshot":
            # A snapshot leaps over the chunks it folds in; its last part moves the offset.
            if frame["offset"] < self.offset:
                self.duplicates += 1
                return
            if frame["part"] == frame["parts"]:
                self.offset = frame["offset"]
            if self.record:
                gather_turn(self.turns, frame)
        elif (offset := log_offset(frame)) is not None:
            if offset <= self.offset:
                self.duplicates += 1
                return
            self.offset = offset
            if self.record:
                gather_turn(self.turns, frame)
