"""The broker kept in this process: per-session logs with live fan-out.

Used by the all-in-one ``chatrelay serve``. It keeps the guarantees of
``base.Broker`` within one process; its epoch is new at every start, so
clients of a restarted process reset instead of replaying a log that is gone.
A fenced publish asks the memory coordination, as ``publish.lua`` reads the
lease and cancel keys.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from chatrelay.engine.base import Event, History, Lease, Published
from chatrelay.engine.coordination_memory import MemoryCoordination
from chatrelay.engine.events import encode_event
from chatrelay.engine.subscription import QueueSubscription
from chatrelay.exceptions import LeaseLost


@dataclass
class _Log:
    epoch: str
    latest: int = 0
    events: deque[tuple[float, Event]] = field(default_factory=deque)
    subscribers: set[QueueSubscription] = field(default_factory=set)


class MemoryBroker:
    """``Broker`` of ``engine/base.py`` in this process's memory.

    ``coordination`` answers the fencing and cancel checks of ``publish``.
    """

    def __init__(
        self, coordination: MemoryCoordination, max_events: int = 1000, log_ttl: float = 300.0
    ) -> None:
        self._coordination = coordination
        self._max_events = max_events
        self._log_ttl = log_ttl
        self._logs: dict[str, _Log] = {}

    def _log(self, session_id: str) -> _Log:
        log = self._logs.get(session_id)
        if log is None:
            log = self._logs[session_id] = _Log(epoch=uuid.uuid4().hex[:16])
        return log

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
        now = time.monotonic()
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

    async def position(self, session_id: str) -> tuple[str, int]:
        log = self._log(session_id)
        return log.epoch, log.latest

    async def history(self, session_id: str, since: int = 0) -> History:
        log = self._log(session_id)
        self._trim(log, time.monotonic())
        events = [event for _, event in log.events if event.offset > since]
        first_kept = events[0].offset if events else log.latest + 1
        return History(log.epoch, log.latest, events, complete=first_kept <= since + 1)

    async def aclose(self) -> None:
        self._logs.clear()
