"""The memory engine with faults injected on command, for tests of the fast tier.

``FaultyBroker`` keeps the memory broker's logs (offsets, epochs, trimming,
history) and does the live fan-out itself, so it can lose live events the
way a Redis pub/sub connection does while the log still gets them:

- ``drop_live``: the next N live events of a session reach no subscriber;
  with ``then_reconnect`` each subscription is then told it was re-established
  (``on_reconnect`` called), as the Redis broker does once it has replaced a
  lost pub/sub connection;
- ``fail_publishes`` / ``fail_history``: the next N calls raise
  ``EngineError`` (a publish before it appends anything);
- ``lose_logs``: every log is gone (Redis restarted empty, or flushed):
  new epochs, offsets from 1, live connections re-established or not.

``FaultyCoordination`` adds ``expire``: a lease's TTL runs out now, so
another holder can take it (a paused or partitioned worker).

``faulty_engine()`` composes them into an ``Engine`` (what the app and the
workers take) and hands the two wrappers back to steer them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from chatrelay.engine import DEFAULT_LOG_TTL, DEFAULT_MAX_EVENTS
from chatrelay.engine.base import Engine, Event, History, Lease, Published
from chatrelay.engine.broker_memory import MemoryBroker
from chatrelay.engine.coordination_memory import MemoryCoordination
from chatrelay.engine.registry_memory import MemoryRegistry
from chatrelay.engine.subscription import SUBSCRIBER_QUEUE_SIZE
from chatrelay.exceptions import EngineError


class FaultySubscription:
    """Live events of one session from a ``FaultyBroker`` (a ``Subscription``)."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.on_reconnect: Callable[[], None] | None = None
        self._queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_QUEUE_SIZE)

    def offer(self, event: Event) -> None:
        """Hand over a live event; lost when the subscriber is this far behind (at-most-once)."""
        if not self._queue.full():
            self._queue.put_nowait(event)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()

    def reconnected(self) -> None:
        """The live connection was re-established (as the Redis broker says it)."""
        if self.on_reconnect is not None:
            self.on_reconnect()


@dataclass
class _Drop:
    remaining: int
    then_reconnect: bool


class FaultyBroker:
    """A ``Broker``: the memory broker's logs, a fan-out that loses events on command."""

    def __init__(self, new_logs: Callable[[], MemoryBroker]) -> None:
        self._new_logs = new_logs
        self._logs = new_logs()
        self._subscriptions: dict[str, set[FaultySubscription]] = defaultdict(set)
        self._drops: dict[str, _Drop] = {}
        self._failing_publishes = 0
        self._failing_histories = 0
        # (session id, offset) of every live event lost so far, oldest first.
        self.dropped: list[tuple[str, int]] = []

    # -- faults

    def drop_live(self, session_id: str, count: int, *, then_reconnect: bool = False) -> None:
        """Lose the next ``count`` live events of ``session_id`` (the log still gets them).

        With ``then_reconnect``, once the last is lost every subscription of the
        session is told (``on_reconnect``), and no later event needs to reveal the gap.
        """
        self._drops[session_id] = _Drop(count, then_reconnect)

    def fail_publishes(self, count: int = 1) -> None:
        """Make the next ``count`` publishes raise ``EngineError`` before appending."""
        self._failing_publishes = count

    def fail_history(self, count: int = 1) -> None:
        """Make the next ``count`` history reads raise ``EngineError``."""
        self._failing_histories = count

    def lose_logs(self, *, reconnect: bool = True) -> None:
        """Every log is lost: sessions get new epochs and count offsets from 1 again.

        With ``reconnect`` (an engine restarted empty) every live subscription
        is re-established (``on_reconnect`` called); without it the live
        connection survives the loss (a flushed Redis, or its keys evicted).
        """
        self._logs = self._new_logs()
        if not reconnect:
            return
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.reconnected()

    def subscriber_count(self, session_id: str) -> int:
        """How many live subscriptions ``session_id`` has now."""
        return len(self._subscriptions.get(session_id, ()))

    # -- the Broker protocol

    async def publish(
        self,
        session_id: str,
        frame: Mapping[str, Any],
        *,
        lease: Lease | None = None,
        cancel_of: str | None = None,
    ) -> Published:
        if self._failing_publishes:
            self._failing_publishes -= 1
            raise EngineError("injected fault: publish failed")
        published = await self._logs.publish(session_id, frame, lease=lease, cancel_of=cancel_of)
        subscriptions = self._subscriptions.get(session_id, set())
        drop = self._drops.get(session_id)
        if drop is None:
            for subscription in subscriptions:
                subscription.offer(published.event)
            return published
        self.dropped.append((session_id, published.event.offset))
        drop.remaining -= 1
        if drop.remaining <= 0:
            del self._drops[session_id]
            if drop.then_reconnect:
                for subscription in subscriptions:
                    subscription.reconnected()
        return published

    @asynccontextmanager
    async def subscribe(self, session_id: str) -> AsyncIterator[FaultySubscription]:
        subscription = FaultySubscription(session_id)
        self._subscriptions[session_id].add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions[session_id].discard(subscription)
            if not self._subscriptions[session_id]:
                del self._subscriptions[session_id]

    async def position(self, session_id: str) -> tuple[str, int]:
        return await self._logs.position(session_id)

    async def history(self, session_id: str, since: int = 0) -> History:
        if self._failing_histories:
            self._failing_histories -= 1
            raise EngineError("injected fault: history failed")
        return await self._logs.history(session_id, since)

    async def delete(self, session_id: str) -> None:
        await self._logs.delete(session_id)

    async def aclose(self) -> None:
        await self._logs.aclose()


class FaultyCoordination(MemoryCoordination):
    """The memory coordination, whose leases can be made to expire on command."""

    def __init__(self) -> None:
        super().__init__()
        self._granted: dict[str, Lease] = {}

    async def acquire(self, key: str, ttl: float, holder: str) -> Lease | None:
        lease = await super().acquire(key, ttl, holder)
        if lease is not None:
            self._granted[key] = lease
        return lease

    async def expire(self, key: str) -> None:
        """The lease on ``key`` runs out now: its holder's fenced calls fail from here on."""
        lease = self._granted.pop(key, None)
        if lease is not None:
            await self.release(lease)


@dataclass(frozen=True, slots=True)
class Faults:
    """An engine to hand to the code under test, and the wrappers that steer its faults."""

    engine: Engine
    broker: FaultyBroker
    coordination: FaultyCoordination


def faulty_engine(
    *, max_events: int = DEFAULT_MAX_EVENTS, log_ttl: float = DEFAULT_LOG_TTL
) -> Faults:
    """The memory engine (logs capped at ``max_events``) with the fault wrappers in it."""
    coordination = FaultyCoordination()
    broker = FaultyBroker(lambda: MemoryBroker(coordination, max_events, log_ttl))
    engine = Engine(broker=broker, registry=MemoryRegistry(), coordination=coordination)
    return Faults(engine, broker, coordination)
