"""Every Redis key and channel name of the Redis engine, in one place.

A name is an optional deployment prefix (``CHATRELAY_REDIS_PREFIX``, for
operators who share one Redis between deployments), then a kind, then an id
(``chat:log:`` + session id) unless it has no id. ``docs/engine.md`` draws the
whole layout; without a prefix the seed's names (``chat:stream:``,
``sessions:active``, ``sessions:user:``) are kept so the seed's operators find
what they know. Nothing else in the engine builds a key name.

On Redis Cluster (``KeySpace(prefix, tagged=True)``) every id is a hash tag:
all keys of a session (its log, meta, channel, sockets, generation lease and
cancel flags) hash to the session's slot, so each script touches one slot and
a session's fan-out stays on its shard; a user's keys hash to the user's slot.
The one cluster-wide index, ``sessions:active``, is split into
``ACTIVE_SHARDS`` hashes spread over the slots.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

# -- broker: one session's log

#: Pub/sub channel of a session's live events (the seed's name).
SESSION_CHANNEL = "chat:stream:"
#: Stream holding a session's recent events (capped by count and age).
SESSION_LOG = "chat:log:"
#: Hash ``{epoch, latest}`` of a session: outlives the stream, so offsets never go back.
SESSION_META = "chat:meta:"

# -- registry

#: Hash session id -> user id of sessions with sockets (the seed's name).
ACTIVE_SESSIONS = "sessions:active"
#: Set of a user's recent session ids, 30-minute TTL (the seed's name).
USER_SESSIONS = "sessions:user:"
#: A socket's heartbeat key: the connection as JSON, expiring unless renewed.
CONNECTION = "conn:"
#: Sorted set connection id -> expiry (ms) of one session's sockets.
SESSION_CONNECTIONS = "sessions:connections:"
#: Sorted set connection id -> expiry (ms) of one user's sockets.
USER_CONNECTIONS = "users:connections:"

# -- coordination

#: A lease: ``"{token}:{holder}"``, with the lease's TTL.
LEASE = "lease:"
#: Fencing counter of a lease key; INCR gives every grant a larger token.
LEASE_FENCE = "fence:"
#: Cancel flag of a message id, with a TTL.
CANCEL = "cancel:"
#: Token bucket hash ``{tokens, stamp}``; the caller's key follows (``bucket:rate:u1``).
BUCKET = "bucket:"
#: A one-time socket ticket: the principal as JSON, expiring with the ticket.
TICKET = "ticket:"
#: Sorted set member -> expiry (ms) of a bounded set of slots (``slots:running:u1``).
SLOTS = "slots:"

# -- nodes

#: A node's last status as JSON (``node:gateway:gw-1``), expiring with its TTL.
NODE = "node:"
#: Sorted set ``{kind}:{node id}`` -> expiry (ms) of every node that reported.
NODES = "nodes"

#: On Redis Cluster, ``sessions:active`` is this many hashes (``sessions:active:{3}``),
#: a session's by a hash of its id, so no one shard holds every socket's session.
ACTIVE_SHARDS = 16


def tag(id_: str) -> str:
    """``id_`` as a Redis Cluster hash tag: keys with the same tag share a slot."""
    return "{" + id_ + "}"


def _kind(kind: str) -> Callable[[KeySpace, str], str]:
    """A :class:`KeySpace` method: the prefix, ``kind``, then the id (a hash tag when tagged)."""

    def name(space: KeySpace, id_: str) -> str:
        return f"{space.prefix}{kind}{tag(id_) if space.tagged else id_}"

    return name


def _scoped(kind: str) -> Callable[[KeySpace, str], str]:
    """A :class:`KeySpace` method for a key ``{scope kind}:{scope id}`` (a lease key such as
    ``generation:{session}``): tagged, the scope id is the hash tag, so a session's
    generation lease lives in the session's slot; a key without a colon is its own tag."""

    def name(space: KeySpace, key: str) -> str:
        if not space.tagged:
            return f"{space.prefix}{kind}{key}"
        scope, colon, id_ = key.partition(":")
        return (
            f"{space.prefix}{kind}{scope}:{tag(id_)}"
            if colon
            else f"{space.prefix}{kind}{tag(key)}"
        )

    return name


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The names of one deployment: every kind above behind ``prefix`` (default none).

    ``tagged`` (Redis Cluster) makes each id a hash tag, see the module's doc.
    ``connection(session, "")`` is the bare prefix a script appends connection ids to.
    """

    prefix: str = ""
    tagged: bool = False

    session_channel = _kind(SESSION_CHANNEL)
    session_log = _kind(SESSION_LOG)
    session_meta = _kind(SESSION_META)
    user_sessions = _kind(USER_SESSIONS)
    session_connections = _kind(SESSION_CONNECTIONS)
    user_connections = _kind(USER_CONNECTIONS)
    lease = _scoped(LEASE)
    lease_fence = _scoped(LEASE_FENCE)
    bucket = _kind(BUCKET)

    def connection(self, session_id: str, connection_id: str) -> str:
        """A socket's heartbeat key; tagged, it lives in its session's slot."""
        if self.tagged:
            return f"{self.prefix}{CONNECTION}{tag(session_id)}:{connection_id}"
        return f"{self.prefix}{CONNECTION}{connection_id}"

    def cancel(self, session_id: str, message_id: str) -> str:
        """A message's cancel flag; tagged, it lives in its session's slot (``publish.lua``
        reads it with the session's log)."""
        if self.tagged:
            return f"{self.prefix}{CANCEL}{tag(session_id)}:{message_id}"
        return f"{self.prefix}{CANCEL}{message_id}"

    def active_sessions(self, session_id: str = "") -> str:
        """The hash of sessions with sockets; tagged, the one of ``session_id``'s shard."""
        if self.tagged:
            shard = zlib.crc32(session_id.encode()) % ACTIVE_SHARDS
            return f"{self.prefix}{ACTIVE_SESSIONS}:{tag(str(shard))}"
        return f"{self.prefix}{ACTIVE_SESSIONS}"

    def all_active_sessions(self) -> list[str]:
        """Every hash of sessions with sockets (one, or ``ACTIVE_SHARDS`` when tagged)."""
        if self.tagged:
            return [f"{self.prefix}{ACTIVE_SESSIONS}:{tag(str(n))}" for n in range(ACTIVE_SHARDS)]
        return [self.active_sessions()]

    def node(self, member: str) -> str:
        """A node's status key; tagged, every node's shares the slot of ``nodes()``."""
        return f"{self.prefix}{NODE}{tag(NODES) + ':' if self.tagged else ''}{member}"

    def ticket(self, ticket: str) -> str:
        return f"{self.prefix}{TICKET}{ticket}"

    def nodes(self) -> str:
        return f"{self.prefix}{tag(NODES) if self.tagged else NODES}"

    def slots(self, key: str) -> str:
        return f"{self.prefix}{SLOTS}{key}"
