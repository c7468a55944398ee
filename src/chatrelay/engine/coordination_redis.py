"""Coordination on Redis: leases, cancel flags, token buckets, tickets, slots for every node.

Each lease change is one Lua script (compare-and-set on the exact value
``"{token}:{holder}"``), so it is atomic and costs one round trip; the
fencing check and the cancel flag of a generation's chunks are read inside
``publish.lua`` by the broker.
"""

from __future__ import annotations

import time

from chatrelay.engine.base import Lease
from chatrelay.engine.redis_client import RedisCore, as_text, milliseconds

# Fencing counters are kept this long after a key's last grant.
FENCE_TTL = 7 * 24 * 3600.0


def _lease_value(lease: Lease) -> str:
    return f"{lease.token}:{lease.holder}"


class RedisCoordination:
    """``Coordination`` of ``engine/base.py`` on the Redis of ``client``."""

    def __init__(self, client: RedisCore) -> None:
        self._client = client
        self._keys = client.keys

    async def acquire(self, key: str, ttl: float, holder: str) -> Lease | None:
        token = await self._client.run(
            "acquire",
            [self._keys.lease(key), self._keys.lease_fence(key)],
            [holder, milliseconds(ttl), milliseconds(FENCE_TTL)],
        )
        return None if token is None else Lease(key, int(token), holder, ttl)

    async def renew(self, lease: Lease) -> bool:
        renewed = await self._client.run(
            "renew", [self._keys.lease(lease.key)], [_lease_value(lease), milliseconds(lease.ttl)]
        )
        return bool(renewed)

    async def release(self, lease: Lease) -> bool:
        released = await self._client.run(
            "release", [self._keys.lease(lease.key)], [_lease_value(lease)]
        )
        return bool(released)

    async def lease_holder(self, key: str) -> str | None:
        async with self._client.errors("GET"):
            value = await self._client.redis.get(self._keys.lease(key))
        return None if value is None else as_text(value).partition(":")[2]

    async def request_cancel(self, session_id: str, message_id: str, ttl: float = 300.0) -> None:
        key = self._keys.cancel(session_id, message_id)
        async with self._client.errors("SET"):
            await self._client.redis.set(key, b"1", px=milliseconds(ttl))

    async def take_token(self, key: str, capacity: float, refill_per_second: float) -> float:
        wait = float(
            await self._client.run(
                "take_token", [self._keys.bucket(key)], [capacity, refill_per_second]
            )
        )
        return float("inf") if wait < 0 else wait

    async def issue_ticket(self, ticket: str, data: str, ttl: float) -> None:
        async with self._client.errors("SET"):
            await self._client.redis.set(self._keys.ticket(ticket), data, px=milliseconds(ttl))

    async def redeem_ticket(self, ticket: str) -> str | None:
        # GETDEL (Redis 6.2) reads and deletes in one step: a ticket is used once.
        async with self._client.errors("GETDEL"):
            value = await self._client.redis.getdel(self._keys.ticket(ticket))
        return None if value is None else as_text(value)

    async def claim_slot(self, key: str, member: str, limit: int, ttl: float) -> bool:
        claimed = await self._client.run(
            "claim_slot", [self._keys.slots(key)], [member, limit, milliseconds(ttl)]
        )
        return bool(claimed)

    async def release_slot(self, key: str, member: str) -> None:
        async with self._client.errors("ZREM"):
            await self._client.redis.zrem(self._keys.slots(key), member)

    async def slot_members(self, key: str) -> list[str]:
        async with self._client.errors("ZRANGE"):
            members = await self._client.redis.zrangebyscore(
                self._keys.slots(key), f"({milliseconds(time.time())}", "+inf"
            )
        return [as_text(member) for member in members if isinstance(member, bytes | str)]
