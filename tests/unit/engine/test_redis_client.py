"""The Redis client core: one error mapping, the scripts it ships, its pool's health."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chatrelay.engine import create_engine
from chatrelay.engine.base import Engine
from chatrelay.engine.redis_client import RedisClient
from chatrelay.exceptions import EngineError
from tests.unit.engine.conftest import eventually, frame

CLIENT_NAME = "chatrelay:errors-test"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RedisClient]:
    created = RedisClient(redis_url, node_id="errors-test")
    try:
        yield created
    finally:
        await created.aclose()


async def named_connections(admin: Redis) -> int:
    return sum(1 for c in await admin.client_list() if c["name"] == CLIENT_NAME)


async def open_idle_connections(client: RedisClient, count: int) -> None:
    await asyncio.gather(*(client.redis.blpop(f"nothing-{i}", timeout=0.1) for i in range(count)))


@pytest.mark.parametrize(
    "error", [RedisConnectionError("reset"), ConnectionResetError("reset"), TimeoutError()]
)
async def test_a_broken_connection_becomes_engine_error_and_drops_idle_ones(
    client: RedisClient, admin: Redis, error: Exception
) -> None:
    await open_idle_connections(client, 3)
    assert await named_connections(admin) == 3
    with pytest.raises(EngineError, match="Redis GET failed") as raised:
        async with client.errors("GET"):
            raise error
    assert raised.value.__cause__ is error

    async def idle_ones_closed() -> bool:
        return await named_connections(admin) == 0

    await eventually(idle_ones_closed)


async def test_a_refused_command_becomes_engine_error_and_keeps_the_pool(
    client: RedisClient, admin: Redis
) -> None:
    await open_idle_connections(client, 2)
    for error in (ResponseError("WRONGTYPE"), RedisTimeoutError("slow")):
        with pytest.raises(EngineError, match="Redis HSCAN failed"):
            async with client.errors("HSCAN"):
                raise error
    assert await named_connections(admin) == 2


async def test_other_errors_pass_through(client: RedisClient) -> None:
    with pytest.raises(ValueError):
        async with client.errors("GET"):
            raise ValueError("a bug, not Redis")


async def test_unreachable_redis_raises_engine_error(closed_redis_url: str) -> None:
    engine = create_engine(closed_redis_url)
    try:
        assert not await engine.ping()
        with pytest.raises(EngineError):
            await engine.broker.publish("s1", frame(1))
        with pytest.raises(EngineError):
            await engine.coordination.request_cancel("s1", "m1")
        with pytest.raises(EngineError):
            await engine.registry.active_sessions()
    finally:
        await engine.aclose()


def test_every_script_ships_in_the_package(client: RedisClient) -> None:
    assert set(client.scripts) == {
        "publish", "position", "history", "register", "unregister", "session_connections",
        "count_live", "live_sessions", "cleanup", "acquire", "renew", "release", "take_token",
        "claim_slot", "register_user", "register_session", "unregister_session", "drop_expired",
    }  # fmt: skip
    # Shared Lua is included, never run on its own.
    assert "current_epoch" in client.scripts["publish"].script
    assert not any(name.startswith("_") for name in client.scripts)


async def test_facets_share_one_pool(engine: Engine, admin: Redis) -> None:
    await engine.broker.publish("s1", frame(1))
    await engine.coordination.acquire("gen:s1", 10.0, "m1")
    await engine.registry.active_sessions()
    names = [c["name"] for c in await admin.client_list() if c["name"].startswith("chatrelay:")]
    assert names == ["chatrelay:test"]


async def test_connections_the_server_closed_are_not_used_again(
    engine: Engine, admin: Redis
) -> None:
    # A Redis restart closes every pooled connection; no command may fail on one afterwards.
    await asyncio.gather(*(engine.broker.position(f"stale-{i}") for i in range(5)))
    assert await admin.client_kill_filter(_type="normal", skipme=True) >= 1
    await asyncio.sleep(0.2)  # the FINs arrive
    for _ in range(10):
        await engine.broker.position("stale-1")
