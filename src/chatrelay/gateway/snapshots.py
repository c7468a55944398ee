"""What a ``resume`` gets: a replay of the log, a ``snapshot`` of the answer streaming, or a reset.

A socket that joins a session mid-answer (its client asks for the log from
offset 0) or comes back after many chunks would otherwise be sent every chunk
of the answer so far, one frame each, or a ``reset`` when the log was trimmed
below its offset. Instead, the answer still streaming at the log's end (the
*open answer*) is sent as one ``snapshot`` frame (a few parts when its text is
longer than the frame limit) valid at the offset of its newest chunk; the
live tail goes on from the next offset.

Only a client that says it takes snapshots gets one (``resume`` with
``"snapshot": true``, v1.1): a v1 client keeps v1's answers (every event, or
``reset``). The trigger (``plan``):

- The log holds every event after the client's offset: the events before the
  open answer's first chunk are replayed as before; the answer's chunks are
  folded into a snapshot when there are at least ``min_chunks`` of them to
  send (fewer are cheaper replayed as they are; ``min_chunks`` 0 turns
  snapshots off).
- The log was trimmed below the client's offset: a snapshot when the client
  lost nothing but chunks of the open answer (it saw the answer's ``message``),
  or when the client asked from offset 0 (a tab opening the session: it reads
  the finished messages over REST, as a new client does); otherwise ``reset``.

The snapshot's text is the answer's chunks from the log, from ``seq`` 1; when
the log no longer holds the beginning, the store's checkpoint (text and the
``seq`` it reaches) is joined to the chunks after it. A checkpoint that does
not reach the first chunk the log holds, or that disagrees with the log, is
not used: the plan is then a reset, which is honest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import orjson

from chatrelay import metrics
from chatrelay.engine.base import Event, History
from chatrelay.gateway.relay import Relay
from chatrelay.protocol.server_frames import snapshot_frames

# A streaming message's checkpoint in the store: its text and the last chunk ``seq`` in it.
Checkpoint = Callable[[str], Awaitable[tuple[str, int] | None]]

#: Fewer chunks of the open answer than this are replayed as chunks (a resume
#: after a short drop stays byte-for-byte what it was).
DEFAULT_MIN_CHUNKS = 32


@dataclass(frozen=True, slots=True)
class _Chunk:
    offset: int
    seq: int
    delta: str


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """What to queue for one resume: ``before``, then the ``snapshot`` frames
    (valid at ``offset``), then ``after``; or a reset to ``reset``'s position."""

    reset: tuple[str, int] | None = None
    before: Sequence[Event] = ()
    snapshot: list[bytes] = field(default_factory=list)
    offset: int = 0
    after: Sequence[Event] = ()


def open_answer(events: Sequence[Event]) -> tuple[str, list[_Chunk]] | None:
    """The answer still streaming at the end of ``events``, and its chunks among them.

    Read from the end back to the answer's start: a resume after a finished
    answer decodes one event, not the log.
    """
    current: str | None = None
    chunks: list[_Chunk] = []
    for event in reversed(events):
        frame = orjson.loads(event.data)
        kind = frame.get("type")
        if kind == "chunk":
            message_id, seq, delta = frame.get("message_id"), frame.get("seq"), frame.get("delta")
            valid = isinstance(message_id, str) and isinstance(seq, int) and isinstance(delta, str)
            if not valid or (current is not None and message_id != current):
                break  # not this answer's: its chunks start after it
            current = message_id
            chunks.append(_Chunk(event.offset, seq, delta))
        elif kind in ("message", "complete", "deleted"):
            break  # the answer's start, or an end: nothing streams after an end
    chunks.reverse()
    return (current, chunks) if current is not None and chunks else None


def _chunks_of(events: Sequence[Event], message_id: str) -> list[_Chunk]:
    """The chunks of ``message_id`` among ``events``."""
    chunks = []
    for event in events:
        frame = orjson.loads(event.data)
        if frame.get("type") == "chunk" and frame.get("message_id") == message_id:
            chunks.append(_Chunk(event.offset, frame["seq"], frame["delta"]))
    return chunks


def _contiguous(chunks: Sequence[_Chunk]) -> bool:
    """Whether ``chunks`` are one run: ``seq`` and offset each one more than the last."""
    first = chunks[0]
    return all(
        chunk.seq == first.seq + i and chunk.offset == first.offset + i
        for i, chunk in enumerate(chunks)
    )


class Snapshots:
    """Plans each resume of a gateway's sockets (see the module docstring)."""

    def __init__(
        self,
        relay: Relay,
        checkpoint: Checkpoint,
        frame_limit: int,
        min_chunks: int = DEFAULT_MIN_CHUNKS,
    ) -> None:
        self._relay = relay
        self._checkpoint = checkpoint
        self._frame_limit = frame_limit
        self._min_chunks = min_chunks

    async def plan(
        self, session_id: str, epoch: str, after: int, *, snapshot: bool = True
    ) -> ResumePlan:
        """What a resume from ``after`` in ``epoch`` gets (``snapshot``: the client takes
        snapshot frames; else the v1 answer); raises ``EngineError``."""
        history = await self._relay.history(session_id, after)
        if history.epoch != epoch or after > history.latest:
            return ResumePlan(reset=(history.epoch, history.latest))
        plan = await self._snapshot_plan(session_id, after, history) if snapshot else None
        if plan is not None:
            metrics.RESUMES.labels("snapshot").inc()
            return plan
        if not history.complete:
            return ResumePlan(reset=(history.epoch, history.latest))
        metrics.RESUMES.labels("replay").inc()
        return ResumePlan(before=history.events)

    async def _snapshot_plan(
        self, session_id: str, after: int, history: History
    ) -> ResumePlan | None:
        if not self._min_chunks:
            return None  # snapshots are off
        if history.complete and len(history.events) < self._min_chunks:
            return None  # too few events to hold enough chunks: a replay is cheaper
        answer = open_answer(history.events)
        if answer is None:
            return None
        message_id, chunks = answer
        if not _contiguous(chunks):
            return None
        first = chunks[0]
        if history.complete:
            if len(chunks) < self._min_chunks:
                return None
        elif after != 0 and after < first.offset - first.seq:
            return None  # the client lost more than this answer's chunks: a reset
        text = await self._text(session_id, message_id, chunks)
        if text is None:
            return None
        body, seq, offset = text
        try:
            frames = snapshot_frames(message_id, offset, seq, body, self._frame_limit)
        except ValueError:
            return None  # a frame limit too small for any text: the v1 answer
        return ResumePlan(
            before=[event for event in history.events if event.offset < first.offset],
            snapshot=frames,
            offset=offset,
            after=[event for event in history.events if event.offset > offset],
        )

    async def _text(
        self, session_id: str, message_id: str, chunks: list[_Chunk]
    ) -> tuple[str, int, int] | None:
        """The answer's text as of its newest chunk we know: (text, seq, offset)."""
        first, last = chunks[0], chunks[-1]
        if first.seq > 1:
            # Its beginning may still be in the log, before the client's offset.
            earlier = await self._relay.history(session_id, first.offset - first.seq)
            found = open_answer([e for e in earlier.events if e.offset <= last.offset])
            if found is not None and found[0] == message_id and _contiguous(found[1]):
                if found[1][0].seq == 1:
                    chunks = found[1]
                    first = chunks[0]
        deltas = "".join(chunk.delta for chunk in chunks)
        if first.seq == 1:
            return deltas, last.seq, last.offset
        return await self._from_checkpoint(session_id, message_id, chunks)

    async def _from_checkpoint(
        self, session_id: str, message_id: str, chunks: list[_Chunk]
    ) -> tuple[str, int, int] | None:
        """The text from the store's checkpoint and the log's chunks after it."""
        saved = await self._checkpoint(message_id)
        if saved is None:
            return None
        content, saved_seq = saved
        first = chunks[0]
        if saved_seq < first.seq - 1:
            return None  # the checkpoint does not reach the log: a gap nobody holds
        if saved_seq > chunks[-1].seq:
            # Saved after we read the log: its chunks up to the checkpoint are there now.
            newer_log = await self._relay.history(session_id, chunks[-1].offset)
            chunks = chunks + _chunks_of(newer_log.events, message_id)
            if not _contiguous(chunks) or chunks[-1].seq < saved_seq:
                return None
        last = chunks[-1]
        overlap = "".join(chunk.delta for chunk in chunks if chunk.seq <= saved_seq)
        if not content.endswith(overlap):
            return None  # it disagrees with the log
        newer = "".join(chunk.delta for chunk in chunks if chunk.seq > saved_seq)
        return content + newer, last.seq, last.offset
