"""Folding a slow socket's queued chunks of one answer into one frame (v1.1, opt-in).

A socket that keeps up gets every event as the bytes the engine published,
never decoded. One that falls behind (its writer finds more than
``COALESCE_AFTER`` frames waiting) may have many ``chunk`` events of one
answer queued: writing them one frame each costs a send per delta while the
client is already late. When its client asked for it (``coalesce=1`` on the
upgrade, docs/protocol.md "Coalesced chunks"), the writer folds a *run* into
one ``chunk`` frame:

- a run is chunks of one ``message_id`` at consecutive offsets with
  consecutive ``seq``s; anything else (a ``message``, ``complete``, a chunk of
  another answer or out of step, a frame outside the log) ends it;
- the frame says the range it covers: ``from_offset`` .. ``offset`` and
  ``from_seq`` .. ``seq``; ``delta`` is the deltas joined in order; ``ts`` is
  the first (oldest) delta's publish time;
- it is never larger than the frame limit (``CHATRELAY_MAX_FRAME_BYTES``, the
  snapshots' limit): a run stops before the delta that would pass it;
- a run of one chunk goes out as the engine's bytes, unchanged.

And when the send queue is full (the writer is stuck in a send to a client
that reads slowly), the queue is compacted (``compact``): its runs are folded
in place, so a client that reads slowly but reads on gets the answer in
fewer, larger frames instead of being closed with 4408; only a queue that
compacting cannot shrink by a quarter closes the socket as before.

Only offsets the writer never took on this socket are folded (``Outbound``
keeps the highest it took), so a client never holds part of a coalesced
frame: it takes it whole, drops it whole as a repeat, or drops it as past a
gap.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from chatrelay.exceptions import HandshakeRefused
from chatrelay.gateway import close_codes

#: The writer folds chunks only when more than this many frames wait behind the
#: one it took: a socket that keeps up (a few frames queued at most) gets the
#: published bytes as they are, with no decode.
COALESCE_AFTER = 8

# An event's bytes are ``{"offset":N,"type":"chunk",...`` (engine/events.py).
_CHUNK_TYPE = b'"type":"chunk"'
# Digits enough for any offset or seq, to size the frame around its delta.
_WIDEST = 10**15

# One queued frame: (offset, or 0 outside the log; its bytes; whether it is live).
Item = tuple[int, bytes, bool]


def coalescing_asked(query: dict[str, str] | Any) -> bool:
    """Whether the upgrade's query asks for coalesced chunks (``coalesce=1``).

    Raises ``HandshakeRefused`` (4400) for a value other than 1/true or 0/false:
    a client that misspells its opt-in should hear so, not silently get v1.
    """
    value = query.get("coalesce")
    if value is None or value in ("0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise HandshakeRefused(close_codes.BAD_SESSION, "coalesce must be 1 or 0")


def is_chunk_event(data: bytes) -> bool:
    """Whether an event's bytes are a ``chunk`` (a byte test, no decode)."""
    return data.startswith(_CHUNK_TYPE, data.find(b",") + 1)


def _chunk(data: bytes) -> dict[str, Any] | None:
    """The decoded chunk event, or None when it is not a well-formed one."""
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if (
        isinstance(frame, dict)
        and frame.get("type") == "chunk"
        and isinstance(frame.get("message_id"), str)
        and isinstance(frame.get("seq"), int)
        and isinstance(frame.get("delta"), str)
    ):
        return frame
    return None


def _json_size(text: str) -> int:
    """Bytes of ``text`` inside a JSON string (escapes and UTF-8 counted)."""
    return len(orjson.dumps(text)) - 2


class ChunkRun:
    """Consecutive chunks of one answer, folded into one frame of at most ``limit`` bytes.

    ``start`` with the first chunk, ``add`` the frames that follow it in the
    queue until one does not fit, then ``encode``. A chunk folded before (a
    queue compacted) folds on like the chunks it covers. ``items`` are the
    queued frames folded in.
    """

    __slots__ = ("_deltas", "_first", "_room", "items", "message_id", "offset", "seq")

    def __init__(self, item: Item, frame: dict[str, Any], room: int) -> None:
        self._first = frame
        self._deltas: list[str] = [frame["delta"]]
        self._room = room
        self.items = [item]
        self.message_id: str = frame["message_id"]
        self.offset = item[0]
        self.seq: int = frame["seq"]

    @classmethod
    def start(cls, item: Item, limit: int) -> ChunkRun | None:
        """A run from ``item``, or None when it is not a chunk in the log."""
        offset, data, _ = item
        frame = _chunk(data) if offset and is_chunk_event(data) else None
        if frame is None:
            return None
        widest = cls._frame(frame, _WIDEST, _WIDEST, "")
        room = limit - len(orjson.dumps(widest)) - _json_size(frame["delta"])
        return cls(item, frame, room)

    def add(self, item: Item) -> bool:
        """Fold ``item`` in if it is the run's next chunk and fits; False ends the run."""
        offset, data, _ = item
        if offset <= self.offset or not is_chunk_event(data):
            return False
        frame = _chunk(data)
        if (
            frame is None
            or frame["message_id"] != self.message_id
            or frame.get("from_offset", offset) != self.offset + 1
            or frame.get("from_seq", frame["seq"]) != self.seq + 1
            or frame["seq"] - self.seq != offset - self.offset
        ):
            return False
        size = _json_size(frame["delta"])
        if size > self._room:
            return False
        self._room -= size
        self._deltas.append(frame["delta"])
        self.items.append(item)
        self.offset, self.seq = offset, frame["seq"]
        return True

    def encode(self) -> bytes:
        """The run's frame: the first chunk's bytes when it is alone."""
        if len(self.items) == 1:
            return self.items[0][1]
        return orjson.dumps(self._frame(self._first, self.offset, self.seq, "".join(self._deltas)))

    def folded(self) -> Item:
        """The run as one queued frame (live when its first chunk is)."""
        return (self.offset, self.encode(), self.items[0][2])

    @staticmethod
    def _frame(first: dict[str, Any], offset: int, seq: int, delta: str) -> dict[str, Any]:
        """``first`` covering up to ``offset``/``seq`` with ``delta``; ``ts`` stays last."""
        frame = {key: value for key, value in first.items() if key != "ts"}
        frame.update(
            offset=offset,
            from_offset=first.get("from_offset", first["offset"]),
            seq=seq,
            from_seq=first.get("from_seq", first["seq"]),
            delta=delta,
        )
        if "ts" in first:
            frame["ts"] = first["ts"]
        return frame


def compact(items: Iterable[Item], after: int, limit: int) -> list[Item]:
    """``items`` (a full send queue, in order) with every run of chunks at offsets
    above ``after`` (never written) folded into one frame; the rest as they were."""
    compacted: list[Item] = []
    run: ChunkRun | None = None
    for item in items:
        if run is not None:
            if run.add(item):
                continue
            compacted.append(run.folded())
            run = None
        if item[0] > after:
            run = ChunkRun.start(item, limit)
        if run is None:
            compacted.append(item)
    if run is not None:
        compacted.append(run.folded())
    return compacted
