"""Leases on Redis: the keys they leave behind."""

from __future__ import annotations

from redis.asyncio import Redis

from chatrelay.engine.base import Engine
from tests.timing import seconds


async def test_lease_keys_hold_token_and_holder(engine: Engine, admin: Redis) -> None:
    lease = await engine.coordination.acquire("gen:s1", ttl=seconds(10), holder="m1")
    assert lease is not None
    assert await admin.get("lease:gen:s1") == b"%d:m1" % lease.token
    assert await admin.get("fence:gen:s1") == b"%d" % lease.token
    assert await engine.coordination.renew(lease)
    assert await engine.coordination.release(lease)
    assert sorted(await admin.keys("*")) == [b"fence:gen:s1"]  # no other bookkeeping
