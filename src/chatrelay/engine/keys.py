"""Every Redis key and channel name of the Redis engine, in one place.

A name is an optional deployment prefix (``CHATRELAY_REDIS_PREFIX``, for
operators who share one Redis between deployments), then a kind, then an id
(``chat:log:`` + session id) unless it has no id. ``docs/engine.md`` draws the
whole layout; without a prefix the seed's names (``chat:stream:``,
``sessions:active``, ``sessions:user:``) are kept so the seed's operators find
what they know. Nothing else in the engine builds a key name.
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The names of one deployment: every kind above behind ``prefix`` (default none)."""

    prefix: str = ""

    def session_channel(self, session_id: str) -> str:
        return f"{self.prefix}{SESSION_CHANNEL}{session_id}"

    def session_log(self, session_id: str) -> str:
        return f"{self.prefix}{SESSION_LOG}{session_id}"

    def session_meta(self, session_id: str) -> str:
        return f"{self.prefix}{SESSION_META}{session_id}"

    def active_sessions(self) -> str:
        return f"{self.prefix}{ACTIVE_SESSIONS}"

    def user_sessions(self, user_id: str) -> str:
        return f"{self.prefix}{USER_SESSIONS}{user_id}"

    def connection(self, connection_id: str = "") -> str:
        """A socket's heartbeat key; with no id, the prefix a script appends ids to."""
        return f"{self.prefix}{CONNECTION}{connection_id}"

    def session_connections(self, session_id: str) -> str:
        return f"{self.prefix}{SESSION_CONNECTIONS}{session_id}"

    def user_connections(self, user_id: str) -> str:
        return f"{self.prefix}{USER_CONNECTIONS}{user_id}"

    def lease(self, key: str) -> str:
        return f"{self.prefix}{LEASE}{key}"

    def lease_fence(self, key: str) -> str:
        return f"{self.prefix}{LEASE_FENCE}{key}"

    def cancel(self, message_id: str) -> str:
        return f"{self.prefix}{CANCEL}{message_id}"

    def bucket(self, key: str) -> str:
        return f"{self.prefix}{BUCKET}{key}"
