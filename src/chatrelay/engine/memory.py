"""The one-process engine: everything in this process's memory.

Used by the all-in-one ``chatrelay serve``. It keeps the guarantees of
``engine/base.py`` within one process; its epoch is new at every start, so
clients of a restarted process reset instead of replaying a log that is gone.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from chatrelay.engine.base import Connection, Event, History, Lease
from chatrelay.exceptions import LeaseLost

# A subscriber that falls this far behind loses live events (at-most-once);
# its relay repairs the gap from the log.
SUBSCRIBER_QUEUE_SIZE = 10_000


def encode_event(offset: int, body: bytes) -> bytes:
    """Put ``offset`` first into a JSON object already encoded as ``body``."""
    if body == b"{}":
        return b'{"offset":%d}' % offset
    return b'{"offset":%d,%s' % (offset, body[1:])


@dataclass
class _Log:
    epoch: str
    latest: int = 0
    events: deque[tuple[float, Event]] = field(default_factory=deque)
    subscribers: set[asyncio.Queue[Event]] = field(default_factory=set)


@dataclass
class _LeaseState:
    lease: Lease
    expires_at: float
    released: bool = False


class _QueueSubscription:
    def __init__(self, queue: asyncio.Queue[Event]) -> None:
        self._queue = queue
        self.reconnected = asyncio.Event()  # one process: never disconnected

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()


class MemoryEngine:
    """Engine kept in this process (see ``engine/base.py`` for the guarantees)."""

    def __init__(self, max_events: int = 1000, log_ttl: float = 300.0) -> None:
        self._max_events = max_events
        self._log_ttl = log_ttl
        self._logs: dict[str, _Log] = {}
        self._connections: dict[str, tuple[Connection, float]] = {}
        self._user_sessions: dict[str, dict[str, float]] = {}
        self._leases: dict[str, _LeaseState] = {}
        self._fences: dict[str, int] = {}
        # Leases that expired unreleased and were taken over: still orphans to reap.
        self._orphans: dict[tuple[str, int], Lease] = {}
        self._cancels: dict[str, float] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self.dropped_live_events = 0

    # -- broker

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
        self, session_id: str, frame: Mapping[str, Any], *, lease: Lease | None = None
    ) -> Event:
        if lease is not None and not self._is_current(lease):
            raise LeaseLost(f"lease {lease.key} token {lease.token} is no longer held")
        log = self._log(session_id)
        log.latest += 1
        event = Event(log.latest, encode_event(log.latest, orjson.dumps(frame)))
        now = time.monotonic()
        log.events.append((now, event))
        self._trim(log, now)
        for queue in log.subscribers:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped_live_events += 1
        return event

    @asynccontextmanager
    async def subscribe(self, session_id: str) -> AsyncIterator[_QueueSubscription]:
        queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_QUEUE_SIZE)
        log = self._log(session_id)
        log.subscribers.add(queue)
        try:
            yield _QueueSubscription(queue)
        finally:
            log.subscribers.discard(queue)

    async def position(self, session_id: str) -> tuple[str, int]:
        log = self._log(session_id)
        return log.epoch, log.latest

    async def history(self, session_id: str, since: int = 0) -> History:
        log = self._log(session_id)
        self._trim(log, time.monotonic())
        events = [event for _, event in log.events if event.offset > since]
        first_kept = events[0].offset if events else log.latest + 1
        return History(log.epoch, log.latest, events, complete=first_kept <= since + 1)

    # -- registry

    async def register(self, connection: Connection, ttl: float) -> None:
        now = time.monotonic()
        self._connections[connection.connection_id] = (connection, now + ttl)
        self._user_sessions.setdefault(connection.user_id, {})[connection.session_id] = (
            now + 1800.0
        )

    async def heartbeat(self, connection: Connection, ttl: float) -> None:
        await self.register(connection, ttl)

    async def unregister(self, connection: Connection) -> None:
        self._connections.pop(connection.connection_id, None)

    def _live(self) -> list[Connection]:
        now = time.monotonic()
        return [conn for conn, expires in self._connections.values() if expires > now]

    async def session_connections(self, session_id: str) -> list[Connection]:
        return [conn for conn in self._live() if conn.session_id == session_id]

    async def user_connection_count(self, user_id: str) -> int:
        return sum(1 for conn in self._live() if conn.user_id == user_id)

    async def user_sessions(self, user_id: str) -> set[str]:
        now = time.monotonic()
        sessions = self._user_sessions.get(user_id, {})
        return {session for session, expires in sessions.items() if expires > now}

    async def active_sessions(self) -> dict[str, str]:
        return {conn.session_id: conn.user_id for conn in self._live()}

    async def cleanup_stale(self) -> int:
        now = time.monotonic()
        stale = [cid for cid, (_, expires) in self._connections.items() if expires <= now]
        for cid in stale:
            del self._connections[cid]
        for user_id, sessions in list(self._user_sessions.items()):
            for session, expires in list(sessions.items()):
                if expires <= now:
                    del sessions[session]
            if not sessions:
                del self._user_sessions[user_id]
        return len(stale)

    # -- coordinator

    def _is_current(self, lease: Lease) -> bool:
        state = self._leases.get(lease.key)
        return (
            state is not None
            and not state.released
            and state.lease.token == lease.token
            and state.expires_at > time.monotonic()
        )

    async def acquire(self, key: str, ttl: float, holder: str) -> Lease | None:
        state = self._leases.get(key)
        if state is not None and not state.released and state.expires_at > time.monotonic():
            return None
        if state is not None and not state.released:
            self._orphans[(key, state.lease.token)] = state.lease
        token = self._fences.get(key, 0) + 1
        self._fences[key] = token
        lease = Lease(key, token, holder, ttl)
        self._leases[key] = _LeaseState(lease, time.monotonic() + ttl)
        return lease

    async def renew(self, lease: Lease) -> bool:
        if not self._is_current(lease):
            return False
        self._leases[lease.key].expires_at = time.monotonic() + lease.ttl
        return True

    async def release(self, lease: Lease) -> bool:
        if not self._is_current(lease):
            return False
        del self._leases[lease.key]
        return True

    async def lease_holder(self, key: str) -> str | None:
        state = self._leases.get(key)
        if state is None or state.released or state.expires_at <= time.monotonic():
            return None
        return state.lease.holder

    async def expired_leases(self, prefix: str) -> list[Lease]:
        now = time.monotonic()
        expired = [
            state.lease
            for key, state in self._leases.items()
            if key.startswith(prefix) and not state.released and state.expires_at <= now
        ]
        orphans = [lease for (key, _), lease in self._orphans.items() if key.startswith(prefix)]
        return orphans + expired

    async def forget_lease(self, lease: Lease) -> None:
        self._orphans.pop((lease.key, lease.token), None)
        state = self._leases.get(lease.key)
        if state is not None and state.lease.token == lease.token:
            del self._leases[lease.key]

    async def request_cancel(self, message_id: str, ttl: float = 300.0) -> None:
        self._cancels[message_id] = time.monotonic() + ttl

    async def cancel_requested(self, message_id: str) -> bool:
        expires = self._cancels.get(message_id)
        return expires is not None and expires > time.monotonic()

    async def take_token(self, key: str, capacity: float, refill_per_second: float) -> float:
        now = time.monotonic()
        tokens, stamp = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - stamp) * refill_per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / refill_per_second if refill_per_second > 0 else float("inf")

    # -- lifecycle

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._logs.clear()
