"""The registry on Redis Cluster: each change split by slot, the user's step first.

On one Redis a socket's registration is one script over five keys. On a
cluster a script may touch one slot only, and a socket's keys live in three:
its user's (the socket limit and the user's indexes), its session's (the
heartbeat key and the session's index) and one of the ``sessions:active``
hashes (``keys.ACTIVE_SHARDS``). So ``register`` runs the user's step first
(``register_user.lua``: the limit's count and add stay one atomic step, so
sockets racing on several gateways still cannot all pass), then the session's
step and the active-sessions entry together. What this gives up: a socket
refused by nothing may, for the moment between the steps, count against its
user before its heartbeat key exists; an ``unregister`` racing a ``register``
of the same session may drop its active-sessions entry until the next
heartbeat writes it again (``cleanup_stale`` only uses that hash to find
sessions to clean, so nothing is lost meanwhile).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson

from chatrelay.engine.base import USER_SESSIONS_TTL, Connection
from chatrelay.engine.redis_client import milliseconds
from chatrelay.engine.registry_redis import INDEX_GRACE, RedisRegistry

# Registrations renewed concurrently by ``heartbeat_many`` (each is two scripts on two slots).
HEARTBEAT_CONCURRENCY = 64


class RedisClusterRegistry(RedisRegistry):
    """``Registry`` of ``engine/base.py`` on a Redis Cluster (see the module's doc)."""

    async def register(
        self, connection: Connection, ttl: float, *, max_per_user: int | None = None
    ) -> bool:
        c, keys, ttl_ms = connection, self._keys, milliseconds(ttl)
        user_step = await self._client.run(
            "register_user",
            [keys.user_connections(c.user_id), keys.user_sessions(c.user_id)],
            [
                c.connection_id,
                ttl_ms,
                c.session_id,
                milliseconds(INDEX_GRACE),
                round(USER_SESSIONS_TTL),
                -1 if max_per_user is None else max_per_user,
            ],
        )
        if not user_step:
            return False
        session_step = self._client.run(
            "register_session",
            [
                keys.connection(c.session_id, c.connection_id),
                keys.session_connections(c.session_id),
            ],
            [c.connection_id, orjson.dumps(c), ttl_ms, milliseconds(INDEX_GRACE)],
        )
        await asyncio.gather(session_step, self._mark_active(c))
        return True

    async def _mark_active(self, c: Connection) -> None:
        async with self._client.errors("HSET"):
            await self._client.redis.hset(
                self._keys.active_sessions(c.session_id), c.session_id, c.user_id
            )

    async def heartbeat_many(self, connections: Sequence[Connection], ttl: float) -> None:
        """Renew each registration, ``HEARTBEAT_CONCURRENCY`` at a time."""
        for start in range(0, len(connections), HEARTBEAT_CONCURRENCY):
            batch = connections[start : start + HEARTBEAT_CONCURRENCY]
            await asyncio.gather(*(self.register(c, ttl) for c in batch))

    async def unregister(self, connection: Connection) -> None:
        c, keys = connection, self._keys
        session_step = self._client.run(
            "unregister_session",
            [
                keys.connection(c.session_id, c.connection_id),
                keys.session_connections(c.session_id),
            ],
            [c.connection_id],
        )
        session_empty, _ = await asyncio.gather(session_step, self._forget_user_socket(c))
        if session_empty:
            async with self._client.errors("HDEL"):
                await self._client.redis.hdel(keys.active_sessions(c.session_id), c.session_id)

    async def _forget_user_socket(self, c: Connection) -> None:
        async with self._client.errors("ZREM"):
            await self._client.redis.zrem(self._keys.user_connections(c.user_id), c.connection_id)

    async def active_sessions(self) -> dict[str, str]:
        active: dict[str, str] = {}
        async for pairs in self._active_batches():
            live = await asyncio.gather(
                *(
                    self._client.run("count_live", [self._keys.session_connections(s)], [])
                    for s, _ in pairs
                )
            )
            active.update(pair for pair, count in zip(pairs, live, strict=True) if count)
        return active

    async def cleanup_stale(self) -> int:
        dropped = 0
        async for pairs in self._active_batches():
            results = await asyncio.gather(*(self._cleanup_one(s, u) for s, u in pairs))
            dropped += sum(results)
        return dropped

    async def _cleanup_one(self, session_id: str, user_id: str) -> int:
        """Drop one session's expired sockets (and its user's); forget it if none is left."""
        (dropped, left), _ = await asyncio.gather(
            self._client.run("drop_expired", [self._keys.session_connections(session_id)], []),
            self._client.run("drop_expired", [self._keys.user_connections(user_id)], []),
        )
        if not left:
            async with self._client.errors("HDEL"):
                await self._client.redis.hdel(self._keys.active_sessions(session_id), session_id)
        return int(dropped)
