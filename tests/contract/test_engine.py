"""The engine contract: the same behaviour from every engine implementation.

The ``engine`` fixture (``conftest.py``) runs each test against every engine,
configured to keep at most 50 events per session log. Sections follow the
facets of ``engine/base.py``: broker, coordination, registry.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from chatrelay.engine.base import Connection, Engine
from chatrelay.engine.broker_memory import MemoryBroker
from chatrelay.engine.redis_client import RedisCore
from chatrelay.exceptions import LeaseLost
from tests.timing import seconds

LOG_CAP = 50
LOG_TTL = 300.0  # the fixture's
SHORT_TTL = 0.3
SOCKET_LIMIT = 50


async def forget_idle_logs(engine: Engine, *session_ids: str) -> None:
    """What ``log_ttl`` passing does to logs nobody uses.

    The memory engine's sweep forgets them whole (swept on a clock moved past
    ``log_ttl``); Redis lets their streams expire and keeps the offset counter
    (the stream keys are deleted, as their expiry would).
    """
    if isinstance(engine.broker, MemoryBroker):
        engine.broker.sweep(time.monotonic() + LOG_TTL + 1)
        return
    assert isinstance(engine.client, RedisCore)
    keys = engine.client.keys
    for session_id in session_ids:
        await engine.client.redis.delete(keys.session_log(session_id))


def frame(n: int) -> dict[str, object]:
    return {"type": "chunk", "message_id": "m1", "seq": n, "delta": f"w{n} "}


# -- broker


async def test_publish_assigns_consecutive_offsets_per_session(engine: Engine) -> None:
    offsets = [(await engine.broker.publish("s1", frame(n))).event.offset for n in range(1, 4)]
    other = (await engine.broker.publish("s2", frame(1))).event
    assert offsets == [1, 2, 3]
    assert other.offset == 1


async def test_event_data_is_the_frame_with_its_offset(engine: Engine) -> None:
    published = await engine.broker.publish("s1", {"type": "chunk", "delta": 'héllo "x"', "seq": 1})
    event = published.event
    assert orjson.loads(event.data) == {
        "offset": 1,
        "type": "chunk",
        "delta": 'héllo "x"',
        "seq": 1,
    }


async def test_concurrent_publishes_get_unique_consecutive_offsets(engine: Engine) -> None:
    published = await asyncio.gather(*(engine.broker.publish("s1", frame(n)) for n in range(40)))
    assert sorted(p.event.offset for p in published) == list(range(1, 41))


async def test_subscriber_receives_live_events_in_order(engine: Engine) -> None:
    async with engine.broker.subscribe("s1") as subscription:
        for n in range(1, 6):
            await engine.broker.publish("s1", frame(n))
        received = []
        async with asyncio.timeout(seconds(5)):
            async for event in subscription:
                received.append(event)
                if len(received) == 5:
                    break
    assert [event.offset for event in received] == [1, 2, 3, 4, 5]
    assert [orjson.loads(event.data)["seq"] for event in received] == [1, 2, 3, 4, 5]


async def test_subscriber_gets_only_its_session(engine: Engine) -> None:
    async with engine.broker.subscribe("s1") as subscription:
        await engine.broker.publish("s2", frame(99))
        await engine.broker.publish("s1", frame(1))
        async with asyncio.timeout(seconds(5)):
            async for event in subscription:
                assert orjson.loads(event.data)["seq"] == 1
                break


async def test_two_subscribers_of_one_session_both_receive(engine: Engine) -> None:
    async with engine.broker.subscribe("s1") as first, engine.broker.subscribe("s1") as second:
        await engine.broker.publish("s1", frame(1))
        async with asyncio.timeout(seconds(5)):
            got_first = await anext(aiter(first))
            got_second = await anext(aiter(second))
    assert got_first.offset == got_second.offset == 1


async def test_history_returns_events_after_an_offset(engine: Engine) -> None:
    for n in range(1, 6):
        await engine.broker.publish("s1", frame(n))
    history = await engine.broker.history("s1", since=2)
    assert [event.offset for event in history.events] == [3, 4, 5]
    assert history.latest == 5
    assert history.complete


async def test_history_of_unknown_session_is_empty_and_complete(engine: Engine) -> None:
    history = await engine.broker.history("never-seen", since=0)
    assert history.events == []
    assert history.latest == 0
    assert history.complete
    epoch, latest = await engine.broker.position("never-seen")
    assert latest == 0 and epoch == history.epoch


async def test_history_is_incomplete_once_trimmed(engine: Engine) -> None:
    for n in range(LOG_CAP + 10):
        await engine.broker.publish("s1", frame(n))
    trimmed = await engine.broker.history("s1", since=0)
    assert not trimmed.complete
    assert len(trimmed.events) <= LOG_CAP
    assert trimmed.events[-1].offset == LOG_CAP + 10
    recent = await engine.broker.history("s1", since=LOG_CAP + 5)
    assert recent.complete
    assert [event.offset for event in recent.events] == [
        LOG_CAP + 6,
        LOG_CAP + 7,
        LOG_CAP + 8,
        LOG_CAP + 9,
        LOG_CAP + 10,
    ]


async def test_epoch_is_stable_while_the_log_lives(engine: Engine) -> None:
    await engine.broker.publish("s1", frame(1))
    first, _ = await engine.broker.position("s1")
    await engine.broker.publish("s1", frame(2))
    second, latest = await engine.broker.position("s1")
    assert first == second
    assert latest == 2
    assert (await engine.broker.history("s1")).epoch == first


async def test_a_deleted_log_is_gone_and_its_id_starts_a_new_epoch(engine: Engine) -> None:
    for n in range(1, 4):
        await engine.broker.publish("s1", frame(n))
    await engine.broker.publish("s2", frame(1))
    epoch, _ = await engine.broker.position("s1")
    await engine.broker.delete("s1")
    await engine.broker.delete("never-used")  # not an error
    history = await engine.broker.history("s1")
    assert history.events == []
    assert history.epoch != epoch
    assert history.latest == 0
    assert [e.offset for e in (await engine.broker.history("s2")).events] == [1]


async def test_finding_5_a_forgotten_log_never_moves_offsets_back(engine: Engine) -> None:
    for n in range(1, 4):
        await engine.broker.publish("s1", frame(n))
    held_epoch, held = await engine.broker.position("s1")  # what a client may still hold
    await forget_idle_logs(engine, "s1")
    history = await engine.broker.history("s1", since=held)
    offset = (await engine.broker.publish("s1", frame(4))).event.offset
    epoch, latest = await engine.broker.position("s1")
    assert history.epoch == epoch
    if epoch == held_epoch:  # continuity: the counter survived the log
        assert history.complete and history.events == []
        assert offset == latest == held + 1
    else:  # a new log: the client is told to reset, its offset means nothing now
        assert offset == latest == 1


# -- coordination


async def test_lease_is_exclusive_until_released(engine: Engine) -> None:
    lease = await engine.coordination.acquire("gen:s1", ttl=seconds(10), holder="m1")
    assert lease is not None
    assert await engine.coordination.acquire("gen:s1", ttl=seconds(10), holder="m2") is None
    assert await engine.coordination.lease_holder("gen:s1") == "m1"
    assert await engine.coordination.release(lease)
    assert not await engine.coordination.release(lease)
    assert await engine.coordination.lease_holder("gen:s1") is None
    again = await engine.coordination.acquire("gen:s1", ttl=seconds(10), holder="m2")
    assert again is not None and again.token > lease.token


async def test_lease_expires_and_fencing_rejects_the_old_holder(engine: Engine) -> None:
    old = await engine.coordination.acquire("gen:s1", ttl=SHORT_TTL, holder="m1")
    assert old is not None
    await engine.broker.publish("s1", frame(1), lease=old)
    await asyncio.sleep(SHORT_TTL * 2)
    assert not await engine.coordination.renew(old)
    new = await engine.coordination.acquire("gen:s1", ttl=seconds(10), holder="m2")
    assert new is not None and new.token > old.token
    with pytest.raises(LeaseLost):
        await engine.broker.publish("s1", frame(2), lease=old)
    assert (await engine.broker.history("s1")).latest == 1
    assert (await engine.broker.publish("s1", frame(2), lease=new)).event.offset == 2


async def test_renew_keeps_a_lease_alive(engine: Engine) -> None:
    lease = await engine.coordination.acquire("gen:s1", ttl=SHORT_TTL, holder="m1")
    assert lease is not None
    for _ in range(4):
        await asyncio.sleep(SHORT_TTL / 3)
        assert await engine.coordination.renew(lease)
    assert await engine.coordination.acquire("gen:s1", ttl=SHORT_TTL, holder="m2") is None


async def test_a_publish_reports_a_cancel_of_the_message_it_names(engine: Engine) -> None:
    lease = await engine.coordination.acquire("gen:s1", ttl=seconds(10), holder="m1")
    assert lease is not None
    before = await engine.broker.publish("s1", frame(1), lease=lease, cancel_of="m1")
    await engine.coordination.request_cancel("s1", "m1")  # from any node
    after = await engine.broker.publish("s1", frame(2), lease=lease, cancel_of="m1")
    other = await engine.broker.publish("s1", frame(3), lease=lease, cancel_of="m2")
    unasked = await engine.broker.publish("s1", frame(4))
    assert (before.cancelled, after.cancelled, other.cancelled) == (False, True, False)
    assert not unasked.cancelled
    assert [e.offset for e in (await engine.broker.history("s1")).events] == [1, 2, 3, 4]


async def test_a_fenced_publish_that_lost_its_lease_reports_nothing(engine: Engine) -> None:
    lease = await engine.coordination.acquire("gen:s1", ttl=seconds(10), holder="m1")
    assert lease is not None
    await engine.coordination.request_cancel("s1", "m1")
    assert await engine.coordination.release(lease)
    with pytest.raises(LeaseLost):
        await engine.broker.publish("s1", frame(1), lease=lease, cancel_of="m1")
    assert (await engine.broker.history("s1")).latest == 0


async def test_token_bucket_limits_and_refills(engine: Engine) -> None:
    waits = [
        await engine.coordination.take_token("rate:u1", capacity=3, refill_per_second=10)
        for _ in range(4)
    ]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0 < waits[3] <= 0.1 + 1e-6
    assert await engine.coordination.take_token("rate:u2", capacity=3, refill_per_second=10) == 0.0
    await asyncio.sleep(0.15)
    assert await engine.coordination.take_token("rate:u1", capacity=3, refill_per_second=10) == 0.0


async def test_a_ticket_is_redeemed_once(engine: Engine) -> None:
    await engine.coordination.issue_ticket("t1", '{"user_id": "alice"}', ttl=30)
    assert await engine.coordination.redeem_ticket("t1") == '{"user_id": "alice"}'
    assert await engine.coordination.redeem_ticket("t1") is None
    assert await engine.coordination.redeem_ticket("never-issued") is None


async def test_concurrent_redeems_of_one_ticket_give_it_once(engine: Engine) -> None:
    await engine.coordination.issue_ticket("t2", "data", ttl=30)
    results = await asyncio.gather(*(engine.coordination.redeem_ticket("t2") for _ in range(5)))
    assert results.count("data") == 1
    assert results.count(None) == 4


async def test_a_ticket_expires(engine: Engine) -> None:
    await engine.coordination.issue_ticket("t3", "data", ttl=SHORT_TTL)
    await asyncio.sleep(SHORT_TTL + 0.1)  # the TTL itself is what is tested
    assert await engine.coordination.redeem_ticket("t3") is None


async def test_slots_are_bounded_and_released(engine: Engine) -> None:
    coordination = engine.coordination
    assert await coordination.claim_slot("running:u1", "m1", limit=2, ttl=30)
    assert await coordination.claim_slot("running:u1", "m2", limit=2, ttl=30)
    assert not await coordination.claim_slot("running:u1", "m3", limit=2, ttl=30)
    assert await coordination.claim_slot("running:u1", "m2", limit=2, ttl=30)  # held: renewed
    assert await coordination.claim_slot("running:u2", "m3", limit=2, ttl=30)
    assert sorted(await coordination.slot_members("running:u1")) == ["m1", "m2"]
    await coordination.release_slot("running:u1", "m1")
    await coordination.release_slot("running:u1", "m1")  # idempotent
    assert await coordination.claim_slot("running:u1", "m3", limit=2, ttl=30)


async def test_slots_expire(engine: Engine) -> None:
    coordination = engine.coordination
    assert await coordination.claim_slot("running:u1", "m1", limit=1, ttl=SHORT_TTL)
    assert not await coordination.claim_slot("running:u1", "m2", limit=1, ttl=SHORT_TTL)
    await asyncio.sleep(SHORT_TTL + 0.1)  # the TTL itself is what is tested
    assert await coordination.slot_members("running:u1") == []
    assert await coordination.claim_slot("running:u1", "m2", limit=1, ttl=SHORT_TTL)


# -- registry


async def test_registry_tracks_connections_across_nodes(engine: Engine) -> None:
    a = Connection("c1", "s1", "alice", "gw-1")
    b = Connection("c2", "s1", "alice", "gw-2")
    c = Connection("c3", "s2", "bob", "gw-1")
    for conn in (a, b, c):
        await engine.registry.register(conn, ttl=seconds(10))
    assert sorted(x.connection_id for x in await engine.registry.session_connections("s1")) == [
        "c1",
        "c2",
    ]
    assert await engine.registry.user_connection_count("alice") == 2
    assert await engine.registry.user_sessions("alice") == {"s1"}
    assert await engine.registry.active_sessions() == {"s1": "alice", "s2": "bob"}
    await engine.registry.unregister(b)
    await engine.registry.unregister(b)
    assert [x.connection_id for x in await engine.registry.session_connections("s1")] == ["c1"]
    assert await engine.registry.user_connection_count("alice") == 1


async def test_one_batched_heartbeat_renews_every_socket_it_names(engine: Engine) -> None:
    kept = [Connection(f"c{n}", f"s{n}", "alice", "gw-1") for n in range(3)]
    stale = Connection("c9", "s9", "bob", "gw-dead")
    for connection in (*kept, stale):
        await engine.registry.register(connection, ttl=SHORT_TTL)
    for _ in range(3):
        await asyncio.sleep(SHORT_TTL / 2)
        await engine.registry.heartbeat_many(kept, ttl=SHORT_TTL)
    await engine.registry.heartbeat_many([], ttl=SHORT_TTL)
    assert await engine.registry.user_connection_count("alice") == 3
    assert await engine.registry.user_connection_count("bob") == 0
    assert [x.connection_id for x in await engine.registry.session_connections("s2")] == ["c2"]


async def test_registry_entries_expire_without_heartbeat(engine: Engine) -> None:
    kept = Connection("c1", "s1", "alice", "gw-1")
    stale = Connection("c2", "s2", "alice", "gw-dead")
    await engine.registry.register(kept, ttl=SHORT_TTL)
    await engine.registry.register(stale, ttl=SHORT_TTL)
    for _ in range(3):
        await asyncio.sleep(SHORT_TTL / 2)
        await engine.registry.heartbeat(kept, ttl=SHORT_TTL)
    assert [x.connection_id for x in await engine.registry.session_connections("s1")] == ["c1"]
    assert await engine.registry.session_connections("s2") == []
    assert await engine.registry.user_connection_count("alice") == 1
    assert await engine.registry.cleanup_stale() >= 1
    assert await engine.registry.active_sessions() == {"s1": "alice"}


async def test_finding_10_register_holds_the_user_limit_under_a_race(engine: Engine) -> None:
    racing = [Connection(f"c{n}", f"s{n}", "alice", f"gw-{n % 2}") for n in range(200)]
    registered = await asyncio.gather(
        *(engine.registry.register(c, seconds(10), max_per_user=SOCKET_LIMIT) for c in racing)
    )
    assert registered.count(True) == SOCKET_LIMIT
    assert await engine.registry.user_connection_count("alice") == SOCKET_LIMIT
    admitted = racing[registered.index(True)]
    refused = racing[registered.index(False)]
    assert await engine.registry.register(admitted, seconds(10), max_per_user=SOCKET_LIMIT)
    bob = Connection("b1", "s1", "bob", "gw-0")
    assert await engine.registry.register(bob, seconds(10), max_per_user=SOCKET_LIMIT)
    assert not await engine.registry.register(refused, seconds(10), max_per_user=SOCKET_LIMIT)
    await engine.registry.unregister(admitted)
    assert await engine.registry.register(refused, seconds(10), max_per_user=SOCKET_LIMIT)
    assert await engine.registry.user_connection_count("alice") == SOCKET_LIMIT


async def test_expired_registrations_do_not_count_toward_the_limit(engine: Engine) -> None:
    await engine.registry.register(Connection("c1", "s1", "alice", "gw-dead"), SHORT_TTL)
    await asyncio.sleep(SHORT_TTL * 2)  # the expiry itself is under test
    fresh = Connection("c2", "s2", "alice", "gw-1")
    assert await engine.registry.register(fresh, seconds(10), max_per_user=1)
    assert not await engine.registry.register(
        Connection("c3", "s3", "alice", "gw-1"), seconds(10), max_per_user=1
    )


# -- the whole engine


async def test_ping_answers(engine: Engine) -> None:
    assert await engine.ping()


async def test_aclose_is_idempotent(engine: Engine) -> None:
    await engine.aclose()
    await engine.aclose()
