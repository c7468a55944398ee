"""Key names: the seed's by default, and a prefix that keeps deployments apart."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot as _key_slot

from chatrelay.engine import create_engine
from chatrelay.engine.base import Connection, Engine
from chatrelay.engine.keys import KeySpace
from chatrelay.protocol.client_frames import generation_lease_key
from tests.timing import seconds
from tests.unit.engine.conftest import frame


def test_without_a_prefix_the_seed_names_stay() -> None:
    names = KeySpace()
    assert names.session_channel("s1") == "chat:stream:s1"
    assert names.active_sessions() == "sessions:active"
    assert names.user_sessions("u1") == "sessions:user:u1"


def key_slot(name: str) -> int:
    return _key_slot(name.encode())


def test_on_redis_cluster_a_session_s_keys_share_its_slot_and_a_user_s_theirs() -> None:
    names = KeySpace("blue:", tagged=True)
    session = [
        names.session_channel("s1"),
        names.session_log("s1"),
        names.session_meta("s1"),
        names.connection("s1", "c1"),
        names.session_connections("s1"),
        names.lease(generation_lease_key("s1")),
        names.lease_fence(generation_lease_key("s1")),
        names.cancel("s1", "m1"),
    ]
    assert {key_slot(name) for name in session} == {key_slot("s1")}
    assert key_slot(names.user_connections("u1")) == key_slot(names.user_sessions("u1"))
    assert (
        len(
            {key_slot(names.node(m)) for m in ("gateway:g1", "worker:w9")}
            | {key_slot(names.nodes())}
        )
        == 1
    )
    # sessions:active is split over many slots, a session's always in the same one.
    active = names.all_active_sessions()
    assert len({key_slot(name) for name in active}) == len(active) > 1
    assert names.active_sessions("s1") == names.active_sessions("s1") in active
    assert all(name.startswith("blue:") for name in [*session, *active])


def test_a_prefix_goes_in_front_of_every_name() -> None:
    names = KeySpace("blue:")
    built = [
        names.session_channel("s"),
        names.session_log("s"),
        names.session_meta("s"),
        names.active_sessions(),
        names.user_sessions("u"),
        names.connection("s", "c"),
        names.session_connections("s"),
        names.user_connections("u"),
        names.lease("k"),
        names.lease_fence("k"),
        names.cancel("s", "m"),
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
    await blue.coordination.request_cancel("s1", "m1")
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
