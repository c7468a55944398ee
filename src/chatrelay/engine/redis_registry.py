"""The registry facet of the Redis engine: which sockets are open where.

Keys keep the seed's names (``sessions:active``, ``sessions:user:{userId}``)
plus a heartbeat key per connection and per-session and per-user indexes
scored by expiry (``engine/keys.py``; docs/engine.md draws the layout). Each
change is one Lua script; ``RedisEngine`` supplies the script runner.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatrelay.engine import keys
from chatrelay.engine.base import Connection
from chatrelay.exceptions import EngineError

SCAN_BATCH = 500
# The seed's TTL of ``sessions:user:{userId}``.
USER_SESSIONS_TTL = 1800
# Registry indexes outlive their last socket this long, so ``cleanup_stale``
# sees (and counts) what it drops; past it Redis drops them even if nobody cleans.
INDEX_GRACE = 3600.0


def milliseconds(seconds: float) -> int:
    """A TTL in whole milliseconds (at least 1: Redis refuses 0)."""
    return max(1, round(seconds * 1000))


def as_text(value: bytes | str) -> str:
    """A reply as ``str`` (the client is made without decode_responses: replies are bytes)."""
    return value.decode() if isinstance(value, bytes) else value


class RedisRegistry:
    """``Registry`` of ``engine/base.py`` on Redis; mixed into ``RedisEngine``."""

    _redis: Redis

    async def _eval(self, name: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        raise NotImplementedError  # RedisEngine runs its registered scripts

    async def _connection_failed(self, exc: BaseException) -> None:
        raise NotImplementedError


    async def register(self, connection: Connection, ttl: float) -> None:
        c = connection
        data = orjson.dumps(
            {
                "connection_id": c.connection_id,
                "session_id": c.session_id,
                "user_id": c.user_id,
                "node_id": c.node_id,
            }
        )
        await self._eval(
            "register",
            [
                keys.CONNECTION + c.connection_id,
                keys.SESSION_CONNECTIONS + c.session_id,
                keys.USER_CONNECTIONS + c.user_id,
                keys.ACTIVE_SESSIONS,
                keys.USER_SESSIONS + c.user_id,
            ],
            [
                c.connection_id,
                data,
                milliseconds(ttl),
                c.session_id,
                c.user_id,
                milliseconds(INDEX_GRACE),
                USER_SESSIONS_TTL,
            ],
        )

    async def heartbeat(self, connection: Connection, ttl: float) -> None:
        await self.register(connection, ttl)

    async def unregister(self, connection: Connection) -> None:
        c = connection
        await self._eval(
            "unregister",
            [
                keys.CONNECTION + c.connection_id,
                keys.SESSION_CONNECTIONS + c.session_id,
                keys.USER_CONNECTIONS + c.user_id,
                keys.ACTIVE_SESSIONS,
            ],
            [c.connection_id, c.session_id],
        )

    async def session_connections(self, session_id: str) -> list[Connection]:
        found = await self._eval(
            "session_connections", [keys.SESSION_CONNECTIONS + session_id], [keys.CONNECTION]
        )
        return [Connection(**orjson.loads(data)) for data in found]

    async def user_connection_count(self, user_id: str) -> int:
        return int(await self._eval("count_live", [keys.USER_CONNECTIONS + user_id], []))

    async def user_sessions(self, user_id: str) -> set[str]:
        try:
            members = await self._redis.smembers(keys.USER_SESSIONS + user_id)
        except (RedisError, OSError) as exc:
            await self._connection_failed(exc)
            raise EngineError(f"Redis SMEMBERS failed: {exc}") from exc
        return {as_text(member) for member in members}

    async def _active_batches(self) -> AsyncIterator[list[tuple[str, str]]]:
        """``sessions:active`` in batches (HSCAN), so no script walks it all at once."""
        cursor, seen = 0, set[bytes | str]()
        while True:
            try:
                cursor, batch = await self._redis.hscan(
                    keys.ACTIVE_SESSIONS, cursor, count=SCAN_BATCH
                )
            except (RedisError, OSError) as exc:
                await self._connection_failed(exc)
                raise EngineError(f"Redis HSCAN failed: {exc}") from exc
            assert isinstance(batch, dict)
            pairs = [(as_text(s), as_text(u)) for s, u in batch.items() if s not in seen]
            seen.update(batch)
            if pairs:
                yield pairs
            if cursor == 0:
                return

    async def active_sessions(self) -> dict[str, str]:
        active: dict[str, str] = {}
        async for pairs in self._active_batches():
            live = await self._eval(
                "live_sessions", [], [keys.SESSION_CONNECTIONS, *(s for s, _ in pairs)]
            )
            active.update(pair for pair, flag in zip(pairs, live, strict=True) if flag)
        return active

    async def cleanup_stale(self) -> int:
        dropped = 0
        async for pairs in self._active_batches():
            dropped += await self._eval(
                "cleanup",
                [keys.ACTIVE_SESSIONS],
                [keys.SESSION_CONNECTIONS, keys.USER_CONNECTIONS, *(x for p in pairs for x in p)],
            )
        return dropped
