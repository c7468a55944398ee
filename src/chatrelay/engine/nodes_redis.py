"""The node registry on Redis: one expiring JSON key per node, and an index scored by expiry.

``report`` sets ``node:{kind}:{id}`` with its TTL and scores the index
``nodes``; ``statuses`` drops expired index entries and reads the keys left
in one MGET. A few nodes report every couple of seconds: plain commands in a
transaction, no script.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from chatrelay.engine.redis_client import RedisCore, as_text, milliseconds

# The index outlives its last report this long, so a cluster that went quiet leaves nothing.
INDEX_GRACE = 3600.0


class RedisNodes:
    """``Nodes`` of ``engine/base.py`` on the Redis of ``client``."""

    def __init__(self, client: RedisCore) -> None:
        self._client = client
        self._keys = client.keys

    async def report(self, kind: str, node_id: str, status: Mapping[str, Any], ttl: float) -> None:
        member = f"{kind}:{node_id}"
        expiry_ms = round(time.time() * 1000) + milliseconds(ttl)
        async with self._client.errors("node report"):
            async with self._client.redis.pipeline(transaction=True) as pipe:
                pipe.set(self._keys.node(member), orjson.dumps(status), px=milliseconds(ttl))
                pipe.zadd(self._keys.nodes(), {member: expiry_ms})
                pipe.pexpire(self._keys.nodes(), milliseconds(INDEX_GRACE))
                await pipe.execute()

    async def forget(self, kind: str, node_id: str) -> None:
        member = f"{kind}:{node_id}"
        async with self._client.errors("node forget"):
            async with self._client.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._keys.node(member))
                pipe.zrem(self._keys.nodes(), member)
                await pipe.execute()

    async def statuses(self) -> list[dict[str, Any]]:
        index = self._keys.nodes()
        async with self._client.errors("node statuses"):
            await self._client.redis.zremrangebyscore(index, "-inf", round(time.time() * 1000))
            found_members = await self._client.redis.zrange(index, 0, -1)
            members = sorted(as_text(m) for m in found_members if isinstance(m, bytes | str))
            if not members:
                return []
            found = await self._client.redis.mget([self._keys.node(m) for m in members])
        return [orjson.loads(data) for data in found if data is not None]
