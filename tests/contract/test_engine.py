"""The engine contract: the same behaviour from every engine implementation.

The ``engine`` fixture (``conftest.py``) runs each test against every engine,
configured to keep at most 50 events per session log.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from chatrelay.engine.base import Connection, Engine
from chatrelay.exceptions import LeaseLost
from tests.timing import seconds

LOG_CAP = 50
SHORT_TTL = 0.3


def frame(n: int) -> dict[str, object]:
    return {"type": "chunk", "message_id": "m1", "seq": n, "delta": f"w{n} "}


async def test_publish_assigns_consecutive_offsets_per_session(engine: Engine) -> None:
    offsets = [(await engine.publish("s1", frame(n))).offset for n in range(1, 4)]
    other = await engine.publish("s2", frame(1))
    assert offsets == [1, 2, 3]
    assert other.offset == 1


async def test_event_data_is_the_frame_with_its_offset(engine: Engine) -> None:
    event = await engine.publish("s1", {"type": "chunk", "delta": "héllo \"x\"", "seq": 1})
    assert orjson.loads(event.data) == {
        "offset": 1,
        "type": "chunk",
        "delta": "héllo \"x\"",
        "seq": 1,
    }


async def test_concurrent_publishes_get_unique_consecutive_offsets(engine: Engine) -> None:
    events = await asyncio.gather(*(engine.publish("s1", frame(n)) for n in range(40)))
    assert sorted(event.offset for event in events) == list(range(1, 41))


async def test_subscriber_receives_live_events_in_order(engine: Engine) -> None:
    async with engine.subscribe("s1") as subscription:
        for n in range(1, 6):
            await engine.publish("s1", frame(n))
        received = []
        async with asyncio.timeout(seconds(5)):
            async for event in subscription:
                received.append(event)
                if len(received) == 5:
                    break
    assert [event.offset for event in received] == [1, 2, 3, 4, 5]
    assert [orjson.loads(event.data)["seq"] for event in received] == [1, 2, 3, 4, 5]


async def test_subscriber_gets_only_its_session(engine: Engine) -> None:
    async with engine.subscribe("s1") as subscription:
        await engine.publish("s2", frame(99))
        await engine.publish("s1", frame(1))
        async with asyncio.timeout(seconds(5)):
            async for event in subscription:
                assert orjson.loads(event.data)["seq"] == 1
                break


async def test_two_subscribers_of_one_session_both_receive(engine: Engine) -> None:
    async with engine.subscribe("s1") as first, engine.subscribe("s1") as second:
        await engine.publish("s1", frame(1))
        async with asyncio.timeout(seconds(5)):
            got_first = await anext(aiter(first))
            got_second = await anext(aiter(second))
    assert got_first.offset == got_second.offset == 1


async def test_history_returns_events_after_an_offset(engine: Engine) -> None:
    for n in range(1, 6):
        await engine.publish("s1", frame(n))
    history = await engine.history("s1", since=2)
    assert [event.offset for event in history.events] == [3, 4, 5]
    assert history.latest == 5
    assert history.complete


async def test_history_of_unknown_session_is_empty_and_complete(engine: Engine) -> None:
    history = await engine.history("never-seen", since=0)
    assert history.events == []
    assert history.latest == 0
    assert history.complete
    epoch, latest = await engine.position("never-seen")
    assert latest == 0 and epoch == history.epoch


async def test_history_is_incomplete_once_trimmed(engine: Engine) -> None:
    for n in range(LOG_CAP + 10):
        await engine.publish("s1", frame(n))
    trimmed = await engine.history("s1", since=0)
    assert not trimmed.complete
    assert len(trimmed.events) <= LOG_CAP
    assert trimmed.events[-1].offset == LOG_CAP + 10
    recent = await engine.history("s1", since=LOG_CAP + 5)
    assert recent.complete
    assert [event.offset for event in recent.events] == [LOG_CAP + 6, LOG_CAP + 7, LOG_CAP + 8,
                                                         LOG_CAP + 9, LOG_CAP + 10]


async def test_epoch_is_stable_while_the_log_lives(engine: Engine) -> None:
    await engine.publish("s1", frame(1))
    first, _ = await engine.position("s1")
    await engine.publish("s1", frame(2))
    second, latest = await engine.position("s1")
    assert first == second
    assert latest == 2
    assert (await engine.history("s1")).epoch == first


async def test_lease_is_exclusive_until_released(engine: Engine) -> None:
    lease = await engine.acquire("gen:s1", ttl=seconds(10), holder="m1")
    assert lease is not None
    assert await engine.acquire("gen:s1", ttl=seconds(10), holder="m2") is None
    assert await engine.lease_holder("gen:s1") == "m1"
    assert await engine.release(lease)
    assert not await engine.release(lease)
    assert await engine.lease_holder("gen:s1") is None
    again = await engine.acquire("gen:s1", ttl=seconds(10), holder="m2")
    assert again is not None and again.token > lease.token


async def test_lease_expires_and_fencing_rejects_the_old_holder(engine: Engine) -> None:
    old = await engine.acquire("gen:s1", ttl=SHORT_TTL, holder="m1")
    assert old is not None
    await engine.publish("s1", frame(1), lease=old)
    await asyncio.sleep(SHORT_TTL * 2)
    assert not await engine.renew(old)
    new = await engine.acquire("gen:s1", ttl=seconds(10), holder="m2")
    assert new is not None and new.token > old.token
    with pytest.raises(LeaseLost):
        await engine.publish("s1", frame(2), lease=old)
    assert (await engine.history("s1")).latest == 1
    assert (await engine.publish("s1", frame(2), lease=new)).offset == 2


async def test_renew_keeps_a_lease_alive(engine: Engine) -> None:
    lease = await engine.acquire("gen:s1", ttl=SHORT_TTL, holder="m1")
    assert lease is not None
    for _ in range(4):
        await asyncio.sleep(SHORT_TTL / 3)
        assert await engine.renew(lease)
    assert await engine.acquire("gen:s1", ttl=SHORT_TTL, holder="m2") is None


async def test_expired_leases_are_reported_until_forgotten(engine: Engine) -> None:
    orphan = await engine.acquire("gen:s1", ttl=SHORT_TTL, holder="m1")
    released = await engine.acquire("gen:s2", ttl=SHORT_TTL, holder="m2")
    alive = await engine.acquire("gen:s3", ttl=seconds(10), holder="m3")
    other = await engine.acquire("cleanup", ttl=SHORT_TTL, holder="n1")
    assert orphan and released and alive and other
    await engine.release(released)
    await asyncio.sleep(SHORT_TTL * 2)
    # A new generation taking the key over must not hide the orphan.
    assert await engine.acquire("gen:s1", ttl=seconds(10), holder="m4") is not None
    found = await engine.expired_leases("gen:")
    assert [(lease.key, lease.holder) for lease in found] == [("gen:s1", "m1")]
    assert await engine.expired_leases("gen:") == found
    await engine.forget_lease(found[0])
    assert await engine.expired_leases("gen:") == []
    assert await engine.lease_holder("gen:s1") == "m4"


async def test_cancel_requests_are_seen_by_every_caller(engine: Engine) -> None:
    assert not await engine.cancel_requested("m1")
    await engine.request_cancel("m1")
    assert await engine.cancel_requested("m1")
    assert not await engine.cancel_requested("m2")


async def test_token_bucket_limits_and_refills(engine: Engine) -> None:
    waits = [await engine.take_token("rate:u1", capacity=3, refill_per_second=10) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0 < waits[3] <= 0.1 + 1e-6
    assert await engine.take_token("rate:u2", capacity=3, refill_per_second=10) == 0.0
    await asyncio.sleep(0.15)
    assert await engine.take_token("rate:u1", capacity=3, refill_per_second=10) == 0.0


async def test_registry_tracks_connections_across_nodes(engine: Engine) -> None:
    a = Connection("c1", "s1", "alice", "gw-1")
    b = Connection("c2", "s1", "alice", "gw-2")
    c = Connection("c3", "s2", "bob", "gw-1")
    for conn in (a, b, c):
        await engine.register(conn, ttl=seconds(10))
    assert sorted(x.connection_id for x in await engine.session_connections("s1")) == ["c1", "c2"]
    assert await engine.user_connection_count("alice") == 2
    assert await engine.user_sessions("alice") == {"s1"}
    assert await engine.active_sessions() == {"s1": "alice", "s2": "bob"}
    await engine.unregister(b)
    await engine.unregister(b)
    assert [x.connection_id for x in await engine.session_connections("s1")] == ["c1"]
    assert await engine.user_connection_count("alice") == 1


async def test_registry_entries_expire_without_heartbeat(engine: Engine) -> None:
    kept = Connection("c1", "s1", "alice", "gw-1")
    stale = Connection("c2", "s2", "alice", "gw-dead")
    await engine.register(kept, ttl=SHORT_TTL)
    await engine.register(stale, ttl=SHORT_TTL)
    for _ in range(3):
        await asyncio.sleep(SHORT_TTL / 2)
        await engine.heartbeat(kept, ttl=SHORT_TTL)
    assert [x.connection_id for x in await engine.session_connections("s1")] == ["c1"]
    assert await engine.session_connections("s2") == []
    assert await engine.user_connection_count("alice") == 1
    assert await engine.cleanup_stale() >= 1
    assert await engine.active_sessions() == {"s1": "alice"}


async def test_ping_answers(engine: Engine) -> None:
    assert await engine.ping()
