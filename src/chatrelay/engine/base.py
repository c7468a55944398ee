"""The engine: the little shared state of chatrelay, as three facets in one object.

Each facet is a Protocol with a memory and a Redis module (``broker_memory``,
``broker_redis``, ...); :class:`Engine` composes one of each and is what the
app holds (``engine.broker.publish``, ``engine.registry.register``,
``engine.coordination.acquire``):

- **Broker**: per-session ordered logs with live fan-out.
  ``publish`` appends an event to the session's log and delivers it to live
  subscribers *atomically*: the event gets the next offset of the session
  (offsets of a session increase by exactly 1 per event within an epoch) and
  every subscriber that receives it receives it with that offset.
  Live delivery is at-most-once (a subscriber that falls behind, or whose
  connection drops, may miss events); the log is the source of truth, and
  ``history`` replays it from any offset it still holds. The log is capped
  (count and age) and offsets never go back under one epoch: Redis keeps the
  offset counter far longer than the log, the memory engine forgets an idle
  log whole and starts it again under a new epoch. An epoch names one
  incarnation of a session's log, and changes when the log was lost or
  forgotten (memory engine restarted or swept, Redis flushed), so a client
  holding another epoch knows its offset means nothing now.
- **Registry**: which sockets are open where, with heartbeats and TTLs, and
  the per-user socket limit checked atomically with the registration.
- **Coordination**: leases with fencing tokens, cancel requests, rate limits.
- **Nodes**: the node registry: every gateway and worker records itself and
  a few live counters every couple of seconds, with a TTL (the cluster view).

Every method may raise :class:`chatrelay.exceptions.EngineError` when the
engine cannot be reached. Methods are safe to cancel unless said otherwise:
a cancelled ``publish`` may or may not have appended its event.
Unknown sessions are not errors: they have an empty log at offset 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

# How long ``Registry.user_sessions`` remembers a session (the seed's TTL of
# ``sessions:user:{userId}``), in seconds.
USER_SESSIONS_TTL = 1800.0


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
class Published:
    """What ``publish`` stored, and whether a cancel was asked of ``cancel_of``.

    ``cancelled`` is read in the same atomic step as the append, so a
    generation learns of a cancel with the chunk it just published and no
    round trip of its own; it is False when no ``cancel_of`` was given.
    """

    event: Event
    cancelled: bool


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

    ``on_reconnect`` (set by the subscriber; must not block) is called when the
    engine re-established a lost live connection: events published meanwhile
    were missed, and the log must be read to fill the gap even if no later
    event reveals it. A callback, not an event to wait on: a gateway holds a
    subscription per session, and a task per subscription waiting for a rare
    reconnect cost one more task and event per session.
    """

    on_reconnect: Callable[[], None] | None

    def __aiter__(self) -> AsyncIterator[Event]: ...


class Broker(Protocol):
    """Per-session ordered logs with live fan-out (guarantees in the module docstring)."""

    async def publish(
        self,
        session_id: str,
        frame: Mapping[str, Any],
        *,
        lease: Lease | None = None,
        cancel_of: str | None = None,
    ) -> Published:
        """Append ``frame`` to the session log and fan it out; return the stored event.

        With ``lease``, the append happens only while that lease is still the
        current grant of its key (fencing): otherwise it raises ``LeaseLost``
        and nothing is appended. With ``cancel_of``, ``Published.cancelled``
        says whether someone asked that message to stop (``request_cancel``).
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

    async def delete(self, session_id: str) -> None:
        """Forget the session's log and its offset record (a deleted conversation).

        Subscribers are not told: publish a last frame first if they must be.
        A later ``publish`` to the same id starts a new log with a new epoch.
        Idempotent; an unknown session is not an error.
        """
        ...

    async def aclose(self) -> None:
        """End every subscription's iteration and stop live delivery (idempotent)."""
        ...


class Registry(Protocol):
    """Which sockets are open where: registrations expire unless heartbeats renew them."""

    async def register(
        self, connection: Connection, ttl: float, *, max_per_user: int | None = None
    ) -> bool:
        """Record an open socket; it expires unless ``heartbeat`` renews it within ``ttl``.

        With ``max_per_user``, the socket is recorded only if its user holds
        fewer live sockets than that on every node, counted and recorded in one
        atomic step (so racing sockets cannot all pass): False when refused.
        Renewing a live registration is never refused.
        """
        ...

    async def heartbeat(self, connection: Connection, ttl: float) -> None:
        """Renew a socket's registration."""
        ...

    async def heartbeat_many(self, connections: Sequence[Connection], ttl: float) -> None:
        """Renew many sockets' registrations (a process's heartbeat: batched, not one call each)."""
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


class Coordination(Protocol):
    """Leases with fencing, cancel flags, token buckets, tickets and slots, shared by every node."""

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

    async def request_cancel(self, session_id: str, message_id: str, ttl: float = 300.0) -> None:
        """Ask the generation of ``message_id`` (in ``session_id``) to stop, from any node.

        The generation learns of it from ``Published.cancelled`` (``publish``'s
        ``cancel_of``), with no round trip of its own.
        """
        ...

    async def take_token(self, key: str, capacity: float, refill_per_second: float) -> float:
        """Token bucket shared by all nodes: 0.0 if a token was taken, else seconds to wait."""
        ...

    async def issue_ticket(self, ticket: str, data: str, ttl: float) -> None:
        """Store ``data`` under the one-time ``ticket`` for ``ttl`` seconds."""
        ...

    async def redeem_ticket(self, ticket: str) -> str | None:
        """The data of ``ticket``, removed atomically; None if unknown, used or expired.

        Of two concurrent redeems (on any nodes), exactly one gets the data.
        """
        ...

    async def claim_slot(self, key: str, member: str, limit: int, ttl: float) -> bool:
        """Add ``member`` to the slots of ``key`` unless ``limit`` live ones are held (atomic).

        A slot expires after ``ttl`` seconds unless released; claiming a member
        already held renews it and succeeds.
        """
        ...

    async def release_slot(self, key: str, member: str) -> None:
        """Give a slot back (idempotent)."""
        ...

    async def slot_members(self, key: str) -> list[str]:
        """The live (not expired) members of the slots of ``key``."""
        ...


class Nodes(Protocol):
    """The node registry: what every live node last said about itself, expiring with a TTL."""

    async def report(self, kind: str, node_id: str, status: Mapping[str, Any], ttl: float) -> None:
        """Record (replace) the status of node ``node_id`` of ``kind``; it expires after ``ttl``."""
        ...

    async def forget(self, kind: str, node_id: str) -> None:
        """Drop a node's status now (a node that stops cleanly; idempotent)."""
        ...

    async def statuses(self) -> list[dict[str, Any]]:
        """The live (not expired) statuses of every node, as reported, ordered by kind and id."""
        ...


def _memory_nodes() -> Nodes:
    from chatrelay.engine.nodes_memory import MemoryNodes

    return MemoryNodes()


class Client(Protocol):
    """The connection the facets of one engine share (the Redis client core)."""

    async def ping(self) -> bool:
        """True when the server answers; False (not an error) when it cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Close every connection."""
        ...


@dataclass(frozen=True, slots=True)
class Engine:
    """One broker, registry, coordination and node registry, and their client (None in memory).

    Built by :func:`chatrelay.engine.create_engine`; the app holds one per process.
    """

    broker: Broker
    registry: Registry
    coordination: Coordination
    client: Client | None = None
    nodes: Nodes = field(default_factory=_memory_nodes)

    async def ping(self) -> bool:
        """True when the engine answers (for health checks); never raises."""
        return True if self.client is None else await self.client.ping()

    async def aclose(self) -> None:
        """Stop live delivery, then close the shared connections."""
        await self.broker.aclose()
        if self.client is not None:
            await self.client.aclose()
