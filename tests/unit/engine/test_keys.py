"""Key names: the seed's by default, and a prefix that keeps deployments apart."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from chatrelay.engine import create_engine
from chatrelay.engine.base import Connection, Engine
from chatrelay.engine.keys import KeySpace
from tests.timing import seconds
from tests.unit.engine.conftest import frame


def test_without_a_prefix_the_seed_names_stay() -> None:
    names = KeySpace()
    assert names.session_channel("s1") == "chat:stream:s1"
    assert names.active_sessions() == "sessions:active"
    assert names.user_sessions("u1") == "sessions:user:u1"


def test_a_prefix_goes_in_front_of_every_name() -> None:
    names = KeySpace("blue:")
    built = [
        names.session_channel("s"),
        names.session_log("s"),
        names.session_meta("s"),
        names.active_sessions(),
        names.user_sessions("u"),
        names.connection("c"),
        names.session_connections("s"),
        names.user_connections("u"),
        names.lease("k"),
        names.lease_fence("k"),
        names.cancel("m"),
        names.bucket("k"),
    ]
    assert all(name.startswith("blue:") for name in built)
    assert len(set(built)) == len(built)


@pytest.fixture
async def blue_and_green(redis_url: str) -> AsyncIterator[tuple[Engine, Engine]]:
    blue = create_engine(redis_url, prefix="blue:")
    green = create_engine(redis_url, prefix="green:")
    try:
        yield blue, green
    finally:
        await blue.aclose()
        await green.aclose()


async def test_engines_with_different_prefixes_do_not_see_each_other(
    blue_and_green: tuple[Engine, Engine], admin: Redis
) -> None:
    blue, green = blue_and_green
    await blue.registry.register(Connection("c1", "s1", "alice", "gw-1"), ttl=seconds(10))
    assert await blue.coordination.acquire("gen:s1", ttl=seconds(10), holder="m1")
    await blue.coordination.request_cancel("m1")
    await blue.broker.publish("s1", frame(1))

    assert await green.registry.active_sessions() == {}
    assert await green.registry.user_sessions("alice") == set()
    assert await green.registry.session_connections("s1") == []
    assert await green.coordination.lease_holder("gen:s1") is None
    assert await green.coordination.acquire("gen:s1", ttl=seconds(10), holder="m2")
    assert (await green.broker.history("s1")).latest == 0
    assert not (await green.broker.publish("s2", frame(1), cancel_of="m1")).cancelled
    assert await blue.registry.active_sessions() == {"s1": "alice"}
    assert await blue.coordination.lease_holder("gen:s1") == "m1"
    assert all(key.startswith((b"blue:", b"green:")) for key in await admin.keys("*"))


async def test_live_events_stay_within_their_prefix(
    blue_and_green: tuple[Engine, Engine],
) -> None:
    blue, green = blue_and_green
    async with green.broker.subscribe("s1") as green_live, blue.broker.subscribe("s1") as blue_live:
        await blue.broker.publish("s1", frame(1))
        await green.broker.publish("s1", frame(7))
        green_event = await anext(aiter(green_live))
        blue_event = await anext(aiter(blue_live))
    assert b'"seq":7' in green_event.data and b'"seq":1' in blue_event.data
