"""The registry on Redis keeps the seed's key names."""

from __future__ import annotations

import orjson
from redis.asyncio import Redis

from chatrelay.engine import keys
from chatrelay.engine.base import Connection, Engine
from tests.timing import seconds


async def test_keys_keep_the_seed_names(engine: Engine, admin: Redis) -> None:
    await engine.registry.register(Connection("c1", "s1", "alice", "gw-1"), ttl=seconds(10))
    assert await admin.hgetall(keys.ACTIVE_SESSIONS) == {b"s1": b"alice"}
    assert await admin.smembers("sessions:user:alice") == {b"s1"}
    assert 0 < await admin.ttl("sessions:user:alice") <= 1800
    assert orjson.loads(await admin.get("conn:c1"))["node_id"] == "gw-1"
    async with engine.broker.subscribe("s1"):
        assert await admin.pubsub_channels() == [b"chat:stream:s1"]
