"""What the Redis engine does beyond the contract: round trips, keys, epochs, pub/sub.

The shared behaviour is in ``tests/contract/test_engine.py``; these tests look
at Redis itself (commands, keys, connections) on a real ``redis-server``.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from chatrelay.engine import keys, redis_pubsub
from chatrelay.engine import redis as redis_engine
from chatrelay.engine.base import Connection
from chatrelay.engine.redis import RedisEngine, RedisSubscription
from chatrelay.exceptions import EngineError
from tests.timing import seconds


@pytest.fixture
async def engine(redis_url: str) -> AsyncIterator[RedisEngine]:
    created = RedisEngine(redis_url, max_events=50, log_ttl=300.0, node_id="test")
    try:
        yield created
    finally:
        await created.aclose()


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def frame(n: int) -> dict[str, object]:
    return {"type": "chunk", "message_id": "m1", "seq": n, "delta": f"w{n} "}


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float | None = None) -> None:
    """Poll ``check`` until it holds, or fail after ``timeout`` (default: 5 units)."""
    async with asyncio.timeout(timeout or seconds(5)):
        while not await check():
            await asyncio.sleep(0.02)


async def next_event_offset(subscription: RedisSubscription) -> int:
    async with asyncio.timeout(seconds(5)):
        return (await anext(aiter(subscription))).offset


# -- publish


async def test_publish_is_one_round_trip_of_one_evalsha(
    engine: RedisEngine, admin: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await engine.publish("s1", frame(0))  # loads the script once
    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    async def counting(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(bytes(command[0] if isinstance(command, list) else command))
        await original(self, command, check_health)

    await admin.config_resetstat()
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    await engine.publish("s1", frame(1))
    monkeypatch.undo()
    stats = await admin.info("commandstats")

    assert len(sent) == 1 and b"EVALSHA" in sent[0]
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert "cmdstat_eval" not in stats and "cmdstat_script|load" not in stats
    assert stats["cmdstat_publish"]["calls"] == 1  # issued by the script, inside Redis


async def test_a_fenced_publish_learns_of_a_cancel_in_the_same_round_trip(
    engine: RedisEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = await engine.acquire("generation:s1", 10.0, "m1")
    assert lease is not None
    await engine.publish("s1", frame(0), lease=lease)  # loads the script once
    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    async def counting(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(bytes(command[0] if isinstance(command, list) else command))
        await original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    await engine.publish("s1", frame(1), lease=lease)
    assert not await engine.cancel_requested("m1")
    await engine.request_cancel("m1")  # from any node
    assert not await engine.cancel_requested("m1")  # not seen until the next chunk
    await engine.publish("s1", frame(2), lease=lease)
    assert await engine.cancel_requested("m1")
    monkeypatch.undo()
    # publish, request_cancel, publish: the three cancel checks cost nothing.
    assert [c.split(b"\r\n")[2] for c in sent] == [b"EVALSHA", b"SET", b"EVALSHA"]
    await engine.release(lease)
    assert await engine.cancel_requested("m1")  # after release: asked of Redis again


async def test_empty_frame_gets_valid_json(engine: RedisEngine) -> None:
    event = await engine.publish("s1", {})
    assert orjson.loads(event.data) == {"offset": 1}
    assert (await engine.history("s1")).events == [event]


async def test_live_and_logged_bytes_are_the_returned_bytes(engine: RedisEngine) -> None:
    async with engine.subscribe("s1") as subscription:
        published = await engine.publish("s1", {"type": "chunk", "delta": 'é "x" /'})
        async with asyncio.timeout(seconds(5)):
            live = await anext(aiter(subscription))
    assert live == published
    assert (await engine.history("s1")).events == [published]


# -- keys and layout


async def test_keys_keep_the_seed_names(engine: RedisEngine, admin: Redis) -> None:
    await engine.register(Connection("c1", "s1", "alice", "gw-1"), ttl=seconds(10))
    assert await admin.hgetall(keys.ACTIVE_SESSIONS) == {b"s1": b"alice"}
    assert await admin.smembers("sessions:user:alice") == {b"s1"}
    assert 0 < await admin.ttl("sessions:user:alice") <= 1800
    assert orjson.loads(await admin.get("conn:c1"))["node_id"] == "gw-1"
    async with engine.subscribe("s1"):
        assert await admin.pubsub_channels() == [b"chat:stream:s1"]


async def test_offset_counter_outlives_the_stream(engine: RedisEngine, admin: Redis) -> None:
    await engine.publish("s1", frame(1))
    stream_ttl = await admin.pttl(keys.SESSION_LOG + "s1")
    meta_ttl = await admin.pttl(keys.SESSION_META + "s1")
    assert 0 < stream_ttl <= 300_000
    assert meta_ttl > 6 * 24 * 3600 * 1000


async def test_lease_keys_hold_token_and_holder(engine: RedisEngine, admin: Redis) -> None:
    lease = await engine.acquire("gen:s1", ttl=seconds(10), holder="m1")
    assert lease is not None
    assert await admin.get("lease:gen:s1") == b"%d:m1" % lease.token
    assert await admin.zcard(keys.LEASES_GRANTED) == 1
    assert await engine.renew(lease)
    assert await admin.zcard(keys.LEASES_GRANTED) == 1
    assert await engine.release(lease)
    assert await admin.zcard(keys.LEASES_GRANTED) == 0


# -- epochs and history


async def test_flushed_redis_gives_a_new_epoch(engine: RedisEngine, admin: Redis) -> None:
    for n in range(1, 4):
        await engine.publish("s1", frame(n))
    before, _ = await engine.position("s1")
    await admin.flushall()
    after, latest = await engine.position("s1")
    assert after != before and latest == 0
    assert (await engine.publish("s1", frame(1))).offset == 1
    history = await engine.history("s1", since=0)
    assert history.epoch == after
    assert [event.offset for event in history.events] == [1]


async def test_lost_epoch_discards_the_old_stream(engine: RedisEngine, admin: Redis) -> None:
    for n in range(1, 4):
        await engine.publish("s1", frame(n))
    await admin.delete(keys.SESSION_META + "s1")  # as if evicted: the stream is orphaned
    assert (await engine.publish("s1", frame(1))).offset == 1
    history = await engine.history("s1", since=0)
    assert [event.offset for event in history.events] == [1] and history.complete


async def test_history_is_incomplete_when_the_stream_is_gone(
    engine: RedisEngine, admin: Redis
) -> None:
    for n in range(1, 4):
        await engine.publish("s1", frame(n))
    await admin.delete(keys.SESSION_LOG + "s1")
    gone = await engine.history("s1", since=0)
    assert (gone.latest, gone.events, gone.complete) == (3, [], False)
    assert (await engine.history("s1", since=3)).complete


async def test_events_older_than_log_ttl_count_as_trimmed(redis_url: str) -> None:
    engine = RedisEngine(redis_url, log_ttl=0.2)
    try:
        await engine.publish("s1", frame(1))
        await engine.publish("s1", frame(2))
        await asyncio.sleep(0.3)
        old = await engine.history("s1", since=0)
        assert (old.latest, old.events, old.complete) == (2, [], False)
        assert (await engine.publish("s1", frame(3))).offset == 3
        recent = await engine.history("s1", since=2)
        assert recent.complete and [event.offset for event in recent.events] == [3]
    finally:
        await engine.aclose()


# -- pub/sub


async def test_one_pubsub_connection_serves_every_subscription(
    engine: RedisEngine, admin: Redis
) -> None:
    async with (
        engine.subscribe("s1") as first,
        engine.subscribe("s1") as second,
        engine.subscribe("s2") as third,
        engine.subscribe("s3"),
    ):
        assert len(await admin.client_list(_type="pubsub")) == 1
        assert sorted(await admin.pubsub_channels()) == [
            b"chat:stream:s1",
            b"chat:stream:s2",
            b"chat:stream:s3",
        ]
        await engine.publish("s2", frame(1))
        await engine.publish("s1", frame(1))
        assert await next_event_offset(first) == await next_event_offset(second) == 1
        assert await next_event_offset(third) == 1

    async def unsubscribed() -> bool:
        return await admin.pubsub_channels() == []

    await eventually(unsubscribed)


async def test_subscription_resumes_after_its_connection_is_killed(
    engine: RedisEngine, admin: Redis
) -> None:
    async with engine.subscribe("s1") as subscription:
        await engine.publish("s1", frame(1))
        assert await next_event_offset(subscription) == 1
        assert await admin.client_kill_filter(_type="pubsub") == 1
        async with asyncio.timeout(seconds(5)):
            await subscription.reconnected.wait()
        assert subscription.reconnects == 1 and engine.pubsub_reconnects == 1
        await engine.publish("s1", frame(2))
        assert await next_event_offset(subscription) == 2


async def test_subscribing_while_reconnecting_waits_for_the_new_connection(
    engine: RedisEngine, admin: Redis
) -> None:
    async with engine.subscribe("s1"):
        await admin.client_kill_filter(_type="pubsub")
        async with engine.subscribe("s2") as late:
            await engine.publish("s2", frame(1))
            assert await next_event_offset(late) == 1
            # It missed nothing; if it joined before the reader noticed the kill, it is
            # flagged as reconnected anyway (a harmless, conservative catch-up).
            assert late.reconnects <= 1


async def test_subscribe_churn_leaves_exact_bookkeeping(engine: RedisEngine, admin: Redis) -> None:
    async def churn() -> None:
        for _ in range(10):
            async with engine.subscribe("s1"):
                await asyncio.sleep(0)

    await asyncio.gather(*(churn() for _ in range(10)))
    async with engine.subscribe("s1") as subscription:
        await engine.publish("s1", frame(1))
        assert await next_event_offset(subscription) == 1
        assert await admin.pubsub_numsub("chat:stream:s1") == [(b"chat:stream:s1", 1)]


async def test_full_subscriber_queue_drops_and_counts(redis_url: str) -> None:
    engine = RedisEngine(redis_url, subscriber_queue_size=3)
    try:
        async with engine.subscribe("s1") as subscription:
            for n in range(1, 11):
                await engine.publish("s1", frame(n))

            async def all_routed() -> bool:
                return subscription.dropped == 7

            await eventually(all_routed)
            assert [await next_event_offset(subscription) for _ in range(3)] == [1, 2, 3]
            assert engine.dropped_live_events == 7
    finally:
        await engine.aclose()


async def test_aclose_ends_subscriptions_and_stops_the_reader(redis_url: str) -> None:
    engine = RedisEngine(redis_url)
    async with engine.subscribe("s1") as subscription:
        reader = engine._pubsub._task
        consumer = asyncio.create_task(anext(aiter(subscription), None))
        await asyncio.sleep(0)
        await engine.aclose()
        async with asyncio.timeout(seconds(5)):
            assert await consumer is None
    assert reader is not None and reader.done()
    with pytest.raises(EngineError):
        async with engine.subscribe("s1"):
            pass


# -- errors


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_unreachable_redis_raises_engine_error() -> None:
    engine = RedisEngine(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        assert not await engine.ping()
        with pytest.raises(EngineError):
            await engine.publish("s1", frame(1))
        with pytest.raises(EngineError):
            await engine.cancel_requested("m1")
    finally:
        await engine.aclose()


async def test_subscribe_gives_up_in_time_when_redis_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(redis_pubsub, "SUBSCRIBE_TIMEOUT", 0.3)
    engine = RedisEngine(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        with pytest.raises(EngineError):
            async with engine.subscribe("s1"):
                pass
        assert engine._pubsub._channels == {}
    finally:
        await engine.aclose()
    assert "pub/sub connect failed" in caplog.text


# -- packaging


def test_every_script_ships_in_the_package() -> None:
    folder = resources.files("chatrelay.engine") / "redis_scripts"
    shipped = {entry.name for entry in folder.iterdir() if entry.name.endswith(".lua")}
    assert shipped == {f"{name}.lua" for name in redis_engine._SCRIPTS}


async def test_connections_the_server_closed_are_not_used_again(
    engine: RedisEngine, admin: Redis
) -> None:
    # A Redis restart closes every pooled connection; no command may fail on one afterwards.
    await asyncio.gather(*(engine.position(f"stale-{i}") for i in range(5)))
    assert await admin.client_kill_filter(_type="normal", skipme=True) >= 1
    await asyncio.sleep(0.2)  # the FINs arrive
    for _ in range(10):
        await engine.position("stale-1")


async def test_a_silent_pubsub_connection_is_noticed_and_replaced(
    redis_server: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A frozen Redis (SIGSTOP) keeps its TCP connections open but says nothing,
    # like a host that vanished without closing them.
    monkeypatch.setattr(redis_pubsub, "PUBSUB_PING_INTERVAL", 0.2)
    engine = RedisEngine(redis_url)
    try:
        async with engine.subscribe("s1") as subscription:
            redis_server.process.send_signal(signal.SIGSTOP)
            try:
                await asyncio.sleep(1.0)  # silent, PING unanswered: the connection is dropped
            finally:
                redis_server.process.send_signal(signal.SIGCONT)
            async with asyncio.timeout(seconds(10)):
                await subscription.reconnected.wait()
            assert engine.pubsub_reconnects >= 1
            await engine.publish("s1", frame(1))
            assert await next_event_offset(subscription) == 1
    finally:
        await engine.aclose()
