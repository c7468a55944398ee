"""The registry on Redis: which sockets are open where, seen by every node.

Keys keep the seed's names (``sessions:active``, ``sessions:user:{userId}``)
plus a heartbeat key per connection and per-session and per-user indexes
scored by expiry (``engine/keys.py``; docs/engine.md draws the layout). Each
change is one Lua script.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from chatrelay.engine.base import USER_SESSIONS_TTL, Connection
from chatrelay.engine.redis_client import RedisCore, as_text, milliseconds

SCAN_BATCH = 500
# Registrations renewed per pipeline by ``heartbeat_many``.
HEARTBEAT_BATCH = 500
# Registry indexes outlive their last socket this long, so ``cleanup_stale``
# sees (and counts) what it drops; past it Redis drops them even if nobody cleans.
INDEX_GRACE = 3600.0


class RedisRegistry:
    """``Registry`` of ``engine/base.py`` on the Redis of ``client``."""

    def __init__(self, client: RedisCore) -> None:
        self._client = client
        self._keys = client.keys

    def _socket_keys(self, c: Connection) -> list[str]:
        """The keys a socket is recorded in: its heartbeat key and the three indexes."""
        return [
            self._keys.connection(c.session_id, c.connection_id),
            self._keys.session_connections(c.session_id),
            self._keys.user_connections(c.user_id),
            self._keys.active_sessions(c.session_id),
        ]

    async def register(
        self, connection: Connection, ttl: float, *, max_per_user: int | None = None
    ) -> bool:
        keys, args = self._register_args(connection, ttl, max_per_user)
        registered = await self._client.run("register", keys, args)
        return bool(registered)

    def _register_args(
        self, c: Connection, ttl: float, max_per_user: int | None
    ) -> tuple[list[str], list[Any]]:
        keys = [*self._socket_keys(c), self._keys.user_sessions(c.user_id)]
        args = [
            c.connection_id,
            orjson.dumps(c),  # a dataclass: its fields, in order
            milliseconds(ttl),
            c.session_id,
            c.user_id,
            milliseconds(INDEX_GRACE),
            round(USER_SESSIONS_TTL),
            -1 if max_per_user is None else max_per_user,
        ]
        return keys, args

    async def heartbeat(self, connection: Connection, ttl: float) -> None:
        await self.register(connection, ttl)

    async def heartbeat_many(self, connections: Sequence[Connection], ttl: float) -> None:
        """One pipeline (no transaction) of ``register.lua`` calls per ``HEARTBEAT_BATCH``."""
        script = self._client.scripts["register"]
        for start in range(0, len(connections), HEARTBEAT_BATCH):
            async with self._client.errors("heartbeat pipeline"):
                pipe = self._client.redis.pipeline(transaction=False)
                for c in connections[start : start + HEARTBEAT_BATCH]:
                    keys, args = self._register_args(c, ttl, None)
                    await script(keys, args, client=pipe)
                await pipe.execute()

    async def unregister(self, connection: Connection) -> None:
        c = connection
        await self._client.run("unregister", self._socket_keys(c), [c.connection_id, c.session_id])

    async def session_connections(self, session_id: str) -> list[Connection]:
        # The connection keys depend on the zset's members, so the script gets
        # their prefix and appends the ids (on Redis Cluster they share the session's slot).
        found = await self._client.run(
            "session_connections",
            [self._keys.session_connections(session_id)],
            [self._keys.connection(session_id, "")],
        )
        return [Connection(**orjson.loads(data)) for data in found]

    async def user_connection_count(self, user_id: str) -> int:
        return int(await self._client.run("count_live", [self._keys.user_connections(user_id)], []))

    async def user_sessions(self, user_id: str) -> set[str]:
        async with self._client.errors("SMEMBERS"):
            members = await self._client.redis.smembers(self._keys.user_sessions(user_id))
        return {as_text(member) for member in members}

    async def _active_batches(self) -> AsyncIterator[list[tuple[str, str]]]:
        """``sessions:active`` (each of its hashes on Redis Cluster) in batches (HSCAN),
        so no script walks it all at once."""
        for key in self._keys.all_active_sessions():
            cursor, seen = 0, set[bytes | str]()
            while True:
                async with self._client.errors("HSCAN"):
                    cursor, batch = await self._client.redis.hscan(key, cursor, count=SCAN_BATCH)
                assert isinstance(batch, dict)
                pairs = [(as_text(s), as_text(u)) for s, u in batch.items() if s not in seen]
                seen.update(batch)
                if pairs:
                    yield pairs
                if cursor == 0:
                    break

    async def active_sessions(self) -> dict[str, str]:
        active: dict[str, str] = {}
        async for pairs in self._active_batches():
            live = await self._client.run(
                "live_sessions", [self._keys.session_connections(s) for s, _ in pairs], []
            )
            active.update(pair for pair, flag in zip(pairs, live, strict=True) if flag)
        return active

    async def cleanup_stale(self) -> int:
        dropped = 0
        async for pairs in self._active_batches():
            keys = [self._keys.active_sessions()]
            for session_id, user_id in pairs:
                keys += [
                    self._keys.session_connections(session_id),
                    self._keys.user_connections(user_id),
                ]
            dropped += await self._client.run("cleanup", keys, [s for s, _ in pairs])
        return dropped
