"""The broker kept in this process: per-session logs with live fan-out.

Used by the all-in-one ``chatrelay serve``. It keeps the guarantees of
``base.Broker`` within one process. Every log gets a new random epoch when it
is made, so clients of a restarted process reset instead of replaying a log
that is gone. A fenced publish asks the memory coordination, as
``publish.lua`` reads the lease and cancel keys.

Nothing is kept forever: every ``SWEEP_INTERVAL`` seconds a task (started by
the first use, stopped by ``aclose``) trims expired events from every log and
forgets the logs that are idle: no subscriber, and nothing published or
unsubscribed for ``log_ttl`` (so no event is left in them either). Offsets
never go back for a client that holds one: a forgotten log that is used again
is a new log with a new epoch, and a client holding the old epoch is told to
reset (a reload from the store) instead of being shown offsets from 1 again.
The memory engine keeps no counter past the log, unlike Redis's 7-day
``chat:meta``: that record per session would be the very growth swept here,
and a client away longer than ``log_ttl`` has missed events the log no longer
holds anyway. The same task sweeps the other memory facets it is given
(``Sweepable``: expired registrations, lapsed leases, cancel flags, full
buckets).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from chatrelay.engine.base import Event, History, Lease, Published
from chatrelay.engine.coordination_memory import MemoryCoordination
from chatrelay.engine.events import encode_event
from chatrelay.engine.subscription import QueueSubscription
from chatrelay.exceptions import LeaseLost

# How often expired events and idle logs (and the other facets' leftovers) are
# dropped: memory held past its expiry is at most this long and one sweep's work.
SWEEP_INTERVAL = 30.0


class Sweepable(Protocol):
    """A memory facet that forgets what expired by ``now`` (a ``time.monotonic`` value)."""

    def sweep(self, now: float) -> int:
        """Drop what expired; return how many entries."""
        ...


@dataclass
class _Log:
    epoch: str
    used: float  # the last publish, or the moment the last subscriber left
    latest: int = 0
    events: deque[tuple[float, Event]] = field(default_factory=deque)
    subscribers: set[QueueSubscription] = field(default_factory=set)


class MemoryBroker:
    """``Broker`` of ``engine/base.py`` in this process's memory.

    ``coordination`` answers the fencing and cancel checks of ``publish``;
    ``swept`` are the facets the periodic sweep also asks to forget what
    expired (the module docstring says what is dropped when).
    """

    def __init__(
        self,
        coordination: MemoryCoordination,
        max_events: int = 1000,
        log_ttl: float = 300.0,
        *,
        swept: Sequence[Sweepable] = (),
    ) -> None:
        self._coordination = coordination
        self._max_events = max_events
        self._log_ttl = log_ttl
        self._swept = swept
        self._logs: dict[str, _Log] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    def _log(self, session_id: str) -> _Log:
        log = self._logs.get(session_id)
        if log is None:
            log = self._logs[session_id] = _Log(uuid.uuid4().hex[:16], time.monotonic())
            if self._sweeper is None and not self._closed:
                self._sweeper = asyncio.create_task(self._sweep_forever(), name="memory-sweep")
        return log

    @property
    def log_count(self) -> int:
        """Session logs held now (idle ones included until the next sweep)."""
        return len(self._logs)

    def sweep(self, now: float | None = None) -> int:
        """Trim expired events, forget idle logs, sweep ``swept``; return the logs forgotten.

        ``now`` (default: ``time.monotonic()``) lets a test move the clock.
        """
        now = time.monotonic() if now is None else now
        idle = [
            session_id
            for session_id, log in self._logs.items()
            if not log.subscribers and log.used <= now - self._log_ttl
        ]
        for session_id in idle:
            del self._logs[session_id]
        for log in self._logs.values():
            self._trim(log, now)
        for facet in self._swept:
            facet.sweep(now)
        return len(idle)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.sweep()

    def _trim(self, log: _Log, now: float) -> None:
        while log.events and (
            len(log.events) > self._max_events or log.events[0][0] < now - self._log_ttl
        ):
            log.events.popleft()

    async def publish(
        self,
        session_id: str,
        frame: Mapping[str, Any],
        *,
        lease: Lease | None = None,
        cancel_of: str | None = None,
    ) -> Published:
        if lease is not None and not self._coordination.is_current(lease):
            raise LeaseLost(f"lease {lease.key} token {lease.token} is no longer held")
        cancelled = cancel_of is not None and self._coordination.cancel_pending(cancel_of)
        log = self._log(session_id)
        log.latest += 1
        event = Event(log.latest, encode_event(log.latest, orjson.dumps(frame)))
        now = log.used = time.monotonic()
        log.events.append((now, event))
        self._trim(log, now)
        for subscription in log.subscribers:
            # At-most-once: a full queue drops the event; the relay repairs the gap from the log.
            subscription.deliver(event)
        return Published(event, cancelled)

    @asynccontextmanager
    async def subscribe(self, session_id: str) -> AsyncIterator[QueueSubscription]:
        subscription = QueueSubscription()  # one process: never disconnected
        log = self._log(session_id)
        log.subscribers.add(subscription)
        try:
            yield subscription
        finally:
            log.subscribers.discard(subscription)
            log.used = time.monotonic()

    async def position(self, session_id: str) -> tuple[str, int]:
        log = self._log(session_id)
        return log.epoch, log.latest

    async def history(self, session_id: str, since: int = 0) -> History:
        log = self._log(session_id)
        self._trim(log, time.monotonic())
        events = [event for _, event in log.events if event.offset > since]
        first_kept = events[0].offset if events else log.latest + 1
        return History(log.epoch, log.latest, events, complete=first_kept <= since + 1)

    async def delete(self, session_id: str) -> None:
        self._logs.pop(session_id, None)

    async def aclose(self) -> None:
        self._closed = True
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.wait([sweeper])
        self._logs.clear()
