"""The engine: the little shared state of chatrelay, behind one interface.

Three facets, one object:

- **Broker**: per-session ordered logs with live fan-out.
  ``publish`` appends an event to the session's log and delivers it to live
  subscribers *atomically*: the event gets the next offset of the session
  (offsets of a session increase by exactly 1 per event within an epoch) and
  every subscriber that receives it receives it with that offset.
  Live delivery is at-most-once (a subscriber that falls behind, or whose
  connection drops, may miss events); the log is the source of truth, and
  ``history`` replays it from any offset it still holds. The log is capped
  (count and age) but its offset counter is kept far longer, so offsets never
  go back while clients may still hold them. An epoch names one incarnation of
  a session's log, and changes when the log was lost (process restart of the
  memory engine, Redis flushed), so a client holding another epoch knows its
  offset means nothing now.
- **Registry**: which sockets are open where, with heartbeats and TTLs.
- **Coordinator**: leases with fencing tokens, cancel requests, rate limits.

Every method may raise :class:`chatrelay.exceptions.EngineError` when the
engine cannot be reached. Methods are safe to cancel unless said otherwise:
a cancelled ``publish`` may or may not have appended its event.
Unknown sessions are not errors: they have an empty log at offset 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a session log: its offset and the frame as JSON bytes.

    ``data`` is the frame exactly as a client receives it, ``offset`` included,
    so a gateway forwards it to sockets without decoding or re-encoding it.
    """

    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class History:
    """What the log holds after an offset.

    ``complete`` is False when events after ``since`` were trimmed away, in
    which case a client must reload from the store instead of replaying.
    ``latest`` is the log's newest offset (0 for an empty log).
    """

    epoch: str
    latest: int
    events: list[Event]
    complete: bool


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lease. ``token`` is a fencing number: it grows with every grant."""

    key: str
    token: int
    holder: str
    ttl: float


@dataclass(frozen=True, slots=True)
class Connection:
    """A registered socket of a session, on some gateway node."""

    connection_id: str
    session_id: str
    user_id: str
    node_id: str


class Subscription(Protocol):
    """Live events of one session, in offset order, until the context exits.

    ``reconnected`` is set when the engine re-established a lost live
    connection: events published meanwhile were missed, and the log must be
    read to fill the gap even if no later event reveals it. Whoever handles it
    clears it.
    """

    reconnected: asyncio.Event

    def __aiter__(self) -> AsyncIterator[Event]: ...


class Broker(Protocol):
    async def publish(
        self, session_id: str, frame: Mapping[str, Any], *, lease: Lease | None = None
    ) -> Event:
        """Append ``frame`` to the session log and fan it out; return the stored event.

        With ``lease``, the append happens only while that lease is still the
        current grant of its key (fencing): otherwise it raises ``LeaseLost``
        and nothing is appended.
        """
        ...

    def subscribe(self, session_id: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to live events of one session.

        Events published after ``__aenter__`` returns are delivered (at most
        once, in order); leaving the context unsubscribes.
        """
        ...

    async def position(self, session_id: str) -> tuple[str, int]:
        """The session log's epoch and latest offset (0 when nothing was published)."""
        ...

    async def history(self, session_id: str, since: int = 0) -> History:
        """Events with offset > ``since`` that the log still holds, oldest first."""
        ...


class Registry(Protocol):
    async def register(self, connection: Connection, ttl: float) -> None:
        """Record an open socket; it expires unless ``heartbeat`` renews it within ``ttl``."""
        ...

    async def heartbeat(self, connection: Connection, ttl: float) -> None:
        """Renew a socket's registration."""
        ...

    async def unregister(self, connection: Connection) -> None:
        """Forget a socket (idempotent)."""
        ...

    async def session_connections(self, session_id: str) -> list[Connection]:
        """Live (not expired) sockets of a session on every node."""
        ...

    async def user_connection_count(self, user_id: str) -> int:
        """How many live sockets a user holds across every node."""
        ...

    async def user_sessions(self, user_id: str) -> set[str]:
        """Sessions a user has had sockets on lately (the seed's ``sessions:user:{id}``)."""
        ...

    async def active_sessions(self) -> dict[str, str]:
        """Sessions with live sockets: session id -> user id (the seed's ``sessions:active``)."""
        ...

    async def cleanup_stale(self) -> int:
        """Drop expired registrations; return how many were dropped.

        Call it from the holder of the cleanup lease only.
        """
        ...


class Coordinator(Protocol):
    async def acquire(self, key: str, ttl: float, holder: str) -> Lease | None:
        """Take the lease ``key`` for ``ttl`` seconds, or None if someone holds it."""
        ...

    async def renew(self, lease: Lease) -> bool:
        """Extend a held lease by its ttl; False if it was lost (expired, taken over)."""
        ...

    async def release(self, lease: Lease) -> bool:
        """Give a lease back; False if it was not held any more. Idempotent."""
        ...

    async def lease_holder(self, key: str) -> str | None:
        """Who holds ``key`` now (the ``holder`` given to ``acquire``), or None."""
        ...

    async def expired_leases(self, prefix: str) -> list[Lease]:
        """Leases under ``prefix`` whose ttl ran out without a release (orphans).

        Each is reported until ``forget_lease`` is called for it, so a reaper
        that dies mid-way leaves the work for the next one.
        """
        ...

    async def forget_lease(self, lease: Lease) -> None:
        """Stop reporting an expired lease (its orphan was dealt with)."""
        ...

    async def request_cancel(self, message_id: str, ttl: float = 300.0) -> None:
        """Ask the generation of ``message_id`` to stop, from any node."""
        ...

    async def cancel_requested(self, message_id: str) -> bool:
        """Whether someone asked ``message_id`` to stop."""
        ...

    async def take_token(self, key: str, capacity: float, refill_per_second: float) -> float:
        """Token bucket shared by all nodes: 0.0 if a token was taken, else seconds to wait."""
        ...


class Engine(Broker, Registry, Coordinator, Protocol):
    """The whole engine. Implementations: ``memory.MemoryEngine``, ``redis.RedisEngine``."""

    async def ping(self) -> bool:
        """True when the engine answers (for health checks)."""
        ...

    async def aclose(self) -> None:
        """Close connections and stop background tasks."""
        ...
