"""The subscription both brokers hand out: a bounded queue of one session's live events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from chatrelay.engine.base import Event
from chatrelay.light_queue import LightQueue

# A subscriber that falls this far behind loses live events (at-most-once);
# its relay repairs the gap from the log.
SUBSCRIBER_QUEUE_SIZE = 10_000


class QueueSubscription:
    """Live events of one session, fed by its broker (``base.Subscription``).

    Iterating yields events in offset order and ends when the broker closes.
    Live delivery is at-most-once, and these counters say when it was not:
    ``dropped``, events lost because this subscriber's queue was full;
    ``reconnects``, times the broker's live connection (Redis pub/sub) was
    re-established while this subscription was open (``on_reconnect`` is
    called once the resubscription is confirmed).
    """

    __slots__ = ("_lost_connection", "_queue", "dropped", "on_reconnect", "reconnects")

    def __init__(self, queue_size: int = SUBSCRIBER_QUEUE_SIZE) -> None:
        self.dropped = 0
        self.reconnects = 0
        self.on_reconnect: Callable[[], None] | None = None
        self._queue: LightQueue[Event | None] = LightQueue(queue_size)
        self._lost_connection = False

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (event := await self._queue.get()) is not None:
            yield event

    def deliver(self, event: Event) -> bool:
        """Queue a live event; False (counted in ``dropped``) when the queue is full."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    def connection_lost(self) -> None:
        """The live connection dropped: events may be missed until it resubscribes."""
        self._lost_connection = True

    def resubscribed(self) -> None:
        """The channel is confirmed again; flag the gap if the connection had dropped."""
        if self._lost_connection:
            self._lost_connection = False
            self.reconnects += 1
            if self.on_reconnect is not None:
                self.on_reconnect()

    def close(self) -> None:
        """End the iteration (the broker closed), dropping the oldest event if need be."""
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
