"""What a socket sends: one bounded queue, one writer, a session's events in order.

Frames to the client leave through one bounded queue and one writer, so a
client that stops reading never blocks the relay or the other sockets of its
session: when the queue is full the writer is stopped and the socket closed
with a hint to resume, and the client comes back for exactly what it missed.

Every event frame carries its session offset; an outbound queue takes each
offset at most once and in order (``_last``), which is what makes resume and
live delivery meet without a duplicate. While the socket is being welcomed or
is replaying the log, live events are held aside and released afterwards,
dropping those the replay already sent. A resume replays only offsets this
socket has not queued yet (``_floor``), so asking again for what was sent
costs nothing: a client cannot make a socket send its log over and over.

One exception keeps the order PROTOCOL promises ("every event after
``offset``, in order"): a reconnecting client is welcomed at the log's newest
offset and live events flow from there, so those published before its
``resume`` arrives leave ahead of the older events it asks for. A client
drops such an event (handing it out would skip its predecessors), so the
first resume that fills a hole below events already sent sends them again
after the hole, once per socket; the client drops the copies it holds.
Only live events count toward the publish-to-send latency metric. A resume
may fold the chunks of the answer streaming into a ``snapshot``
(``snapshots.py``): it is queued like a replay and moves ``_last`` to its offset.

A socket whose client asked for it (``coalesce=1``) and that falls behind has
the queued chunks of one answer folded into one frame by the writer
(``coalesce.py``); only offsets never written on this socket are folded, so
the repeats described above go out one by one, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from chatrelay import metrics
from chatrelay.engine.base import Event
from chatrelay.engine.events import timestamp_of
from chatrelay.gateway import close_codes
from chatrelay.gateway.coalesce import COALESCE_AFTER, ChunkRun, Item, compact
from chatrelay.light_queue import LightQueue
from chatrelay.protocol.server_frames import ServerFrame, reconnect_frame, reset_frame

SendText = Callable[[str], Awaitable[None]]

# Marks the end of the queue: the writer stops after the frames before it.
_END = b""


class Outbound:
    """The frames waiting for one socket, and the writer that sends them.

    ``deliver`` and ``reset`` are the relay's side (a ``relay.Sink``) and
    never block; every ``send_*`` method only queues. ``write`` is the one
    writer.
    """

    __slots__ = (
        "_closing",
        "_coalesce_limit",
        "_floor",
        "_held",
        "_last",
        "_overflowed",
        "_queue",
        "_resent",
        "_sent",
        "_top",
        "_writer",
        "on_held",
    )

    def __init__(self, maxsize: int, *, coalesce_limit: int = 0) -> None:
        # (offset, or 0 for frames outside the log; the frame's bytes; whether it is live)
        self._queue: LightQueue[Item] = LightQueue(maxsize)
        # The frame limit of coalesced chunks; 0: the client did not ask for them.
        self._coalesce_limit = coalesce_limit
        self._held: list[tuple[Event, bool]] | None = None  # events waiting while we replay
        self._last = 0  # newest offset queued
        self._floor = 0  # every offset in (_floor, _last] was queued (or declared lost)
        self._resent = False  # a replay sent events again that had overtaken a hole
        self._sent = 0  # newest offset written to the socket
        self._top = 0  # highest offset the writer took (to write it)
        self._closing: tuple[int, str] = (close_codes.NORMAL, "")
        self._overflowed = False
        self._writer: asyncio.Task[Any] | None = None
        #: Called (must not block) each time a live event is held aside.
        self.on_held: Callable[[], None] | None = None

    @property
    def ending(self) -> bool:
        """Whether the socket was told to end (``close_with``, ``send_reconnect``): the
        writer stops once what is queued is written."""
        return self._closing != (close_codes.NORMAL, "")

    @property
    def close_reason(self) -> tuple[int, str]:
        """The close code and reason the socket should end with, as things stand."""
        if self._overflowed:
            return close_codes.TOO_SLOW, f"too slow; reconnect and resume from offset {self._sent}"
        return self._closing

    # -- the relay's side (must not block)

    def deliver(self, event: Event, *, live: bool = True) -> None:
        """Queue the session's next event, or hold it aside while the socket replays.

        ``live``: False for an event the relay repaired from the log.
        """
        if self._held is not None:
            if len(self._held) >= self._queue.maxsize:
                self._overflow()
            else:
                self._held.append((event, live))
                if self.on_held is not None:
                    self.on_held()
            return
        self._push(event, live)

    def reset(self, epoch: str, latest: int) -> None:
        """The log lost events up to ``latest``: tell the client, drop what is held."""
        if self._held is not None:
            self._held.clear()
        self.send_frame(reset_frame(epoch, latest))
        self._last = latest
        self._floor = min(self._floor, latest)

    # -- frames outside the log

    def send_frame(self, frame: ServerFrame) -> None:
        """Queue a frame that carries no offset (welcome, error, reset)."""
        self._enqueue(orjson.dumps(frame))

    def send_encoded(self, data: bytes) -> None:
        """Queue a frame already encoded as JSON (a pong)."""
        self._enqueue(data)

    def send_reconnect(self, reason: str) -> None:
        """Tell the client to come back (elsewhere) and resume; the writer ends after it."""
        self.send_frame(reconnect_frame(reason))
        self._closing = (close_codes.RESTARTING, reason)
        self._enqueue(_END)

    def close_with(self, code: int, reason: str) -> None:
        """The socket ends with ``code`` (the reader decided, e.g. a flood); the writer
        stops after what is queued."""
        self._closing = (code, reason)
        self._enqueue(_END)

    # -- welcome and resume

    def hold(self) -> None:
        """Hold live events aside until ``release`` (while the log is read)."""
        self._held = []

    def release(self) -> None:
        """Queue what was held, dropping the offsets already queued."""
        held, self._held = self._held or [], None
        for event, live in held:
            self._push(event, live)

    def skip_to(self, latest: int) -> None:
        """The client holds (or was told to reset to) ``latest``: queue nothing up to it."""
        self._last = max(self._last, latest)

    def start_at(self, latest: int) -> None:
        """The welcome said ``latest``: live delivery starts after it."""
        self._last = self._floor = latest

    async def replay(self, after: int, events: Iterable[Event]) -> None:
        """Queue the log's events after ``after`` that this socket has not queued yet,
        in offset order, waiting for room (a replay is not dropped).

        The first replay that fills a hole below offsets already queued queues
        those again after it (see the module docstring). Cancel-safe: what was
        queued stays queued.
        """
        floor, last = self._floor, self._last
        self._floor = min(floor, after)
        filled = False
        for event in events:
            offset = event.offset
            if after < offset <= floor:
                filled = True
            elif not (offset > last or (filled and not self._resent and offset > floor)):
                continue
            self._last = max(self._last, offset)
            await self._queue.put((offset, event.data, False))
        if filled and last > floor:
            self._resent = True

    def queued_after(self, after: int) -> int:
        """Where a resume from ``after`` starts for this socket: past everything it
        queued when that leaves no hole (``after`` inside ``(_floor, _last]``), so a
        repeated resume gets no second snapshot of what was sent."""
        return max(after, self._last) if after >= self._floor else after

    async def send_snapshot(self, offset: int, frames: list[bytes]) -> None:
        """Queue the ``snapshot`` frames of the answer streaming, valid at ``offset``
        (its chunks up to it are in their text), waiting for room; after the
        events before it (``replay``), and nothing at or below ``offset`` after it."""
        for index, data in enumerate(frames, start=1):
            # The last part carries the offset: the writer counts it as sent then.
            await self._queue.put((offset if index == len(frames) else 0, data, False))
        self._last = max(self._last, offset)

    # -- the writer

    async def write(self, send_text: SendText) -> None:
        """Send queued frames until the end marker of ``send_reconnect`` or an overflow.

        An overflow cancels this writer, wherever it waits (usually inside
        ``send_text`` on a client that stopped reading); it then returns
        normally and ``close_reason`` says 4408. Cancelled from outside, it
        raises ``CancelledError`` as usual.
        """
        if self._overflowed:
            return
        self._writer = asyncio.current_task()
        queue = self._queue
        pending: Item | None = None  # taken from the queue, not folded into a run
        run: ChunkRun | None = None
        try:
            while True:
                if pending is not None:
                    (offset, data, live), pending = pending, None
                else:
                    offset, data, live = queue.get_nowait() if queue.qsize() else await queue.get()
                if not data:  # _END
                    return
                if (
                    self._coalesce_limit
                    and offset > self._top
                    and queue.qsize() >= COALESCE_AFTER
                    and (run := ChunkRun.start((offset, data, live), self._coalesce_limit))
                    is not None
                ):
                    pending = self._fold(run)
                    data, offset = run.encode(), run.offset
                if offset > self._top:
                    self._top = offset
                await send_text(data.decode())
                if offset:
                    self._sent = offset
                    if run is None:
                        metrics.observe_send(timestamp_of(data) if live else None)
                    else:
                        for _, folded, folded_live in run.items:
                            metrics.observe_send(timestamp_of(folded) if folded_live else None)
                # Not kept while the socket idles: orjson's bytes hold a 4 KiB buffer
                # whatever their length (an idle socket kept its welcome's).
                data, run = _END, None
        except asyncio.CancelledError:
            # Our own cancel (see _overflow) ends the writer; anyone else's goes on.
            if not self._overflowed or self._writer is None or self._writer.uncancel() > 0:
                raise
        finally:
            self._writer = None

    def _fold(self, run: ChunkRun) -> Item | None:
        """Take the queued frames that continue ``run``; the first one that does not
        (it goes out next), or None when the queue ran dry."""
        queue = self._queue
        while queue.qsize():
            item = queue.get_nowait()
            if not run.add(item):
                return item
        return None

    def _push(self, event: Event, live: bool) -> None:
        if event.offset <= self._last:
            return
        self._last = event.offset
        self._enqueue(event.data, event.offset, live)

    def _enqueue(self, data: bytes, offset: int = 0, live: bool = False) -> None:
        try:
            self._queue.put_nowait((offset, data, live))
        except asyncio.QueueFull:
            if self._coalesce_limit and self._compact():
                self._queue.put_nowait((offset, data, live))
            else:
                self._overflow()

    def _compact(self) -> bool:
        """Fold the full queue's runs of chunks (``coalesce.compact``); whether that
        freed a quarter of it. Chunks folded here count as relayed now."""
        queue = self._queue
        items = [queue.get_nowait() for _ in range(queue.qsize())]
        compacted = compact(items, self._top, self._coalesce_limit)
        for item in compacted:
            queue.put_nowait(item)
        folded = len(items) - len(compacted)
        if folded:
            metrics.CHUNKS_RELAYED.inc(folded)
        return folded * 4 >= queue.maxsize

    def _overflow(self) -> None:
        if self._overflowed:
            return
        self._overflowed = True
        metrics.SEND_QUEUE_DROPS.inc()
        if self._writer is not None:
            self._writer.cancel()
