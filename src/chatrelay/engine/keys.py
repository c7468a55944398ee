"""Every Redis key and channel name of the Redis engine, in one place.

A name is an optional deployment prefix (``CHATRELAY_REDIS_PREFIX``, for
operators who share one Redis between deployments), then a kind, then an id
(``chat:log:`` + session id) unless it has no id. ``docs/engine.md`` draws the
whole layout; without a prefix the seed's names (``chat:stream:``,
``sessions:active``, ``sessions:user:``) are kept so the seed's operators find
what they know. Nothing else in the engine builds a key name.
"""

from __future__ import annotations

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


def _kind(kind: str) -> Callable[[KeySpace, str], str]:
    """A :class:`KeySpace` method: the prefix, ``kind``, then the id it is given."""

    def name(space: KeySpace, id_: str) -> str:
        return f"{space.prefix}{kind}{id_}"

    return name


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The names of one deployment: every kind above behind ``prefix`` (default none).

    ``connection("")`` is the bare prefix a script appends connection ids to.
    """

    prefix: str = ""

    session_channel = _kind(SESSION_CHANNEL)
    session_log = _kind(SESSION_LOG)
    session_meta = _kind(SESSION_META)
    user_sessions = _kind(USER_SESSIONS)
    connection = _kind(CONNECTION)
    session_connections = _kind(SESSION_CONNECTIONS)
    user_connections = _kind(USER_CONNECTIONS)
    lease = _kind(LEASE)
    lease_fence = _kind(LEASE_FENCE)
    cancel = _kind(CANCEL)
    bucket = _kind(BUCKET)
    node = _kind(NODE)

    def active_sessions(self) -> str:
        return f"{self.prefix}{ACTIVE_SESSIONS}"

    def ticket(self, ticket: str) -> str:
        return f"{self.prefix}{TICKET}{ticket}"

    def nodes(self) -> str:
        return f"{self.prefix}{NODES}"

    def slots(self, key: str) -> str:
        return f"{self.prefix}{SLOTS}{key}"
