"""Every Redis key and channel name of the Redis engine, in one place.

A name is a prefix followed by an id (``SESSION_LOG + session_id``) unless it
has no id. ``docs/engine.md`` draws the whole layout; the seed's names
(``chat:stream:``, ``sessions:active``, ``sessions:user:``) are kept so the
seed's operators find what they know.
"""

from __future__ import annotations

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

# -- coordinator

#: A lease: ``"{token}:{holder}"``, with the lease's TTL.
LEASE = "lease:"
#: Fencing counter of a lease key; INCR gives every grant a larger token.
LEASE_FENCE = "fence:"
#: Sorted set of granted leases scored by expiry (ms), so reapers find orphans.
LEASES_GRANTED = "leases:granted"
#: Cancel flag of a message id, with a TTL.
CANCEL = "cancel:"
#: Token bucket hash ``{tokens, stamp}``; the caller's key follows (``bucket:rate:u1``).
BUCKET = "bucket:"
