"""Live events from Redis: one shared pub/sub connection, its reconnects and its bounds."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from redis.asyncio import Redis

from chatrelay.engine import create_engine, redis_client, redis_pubsub
from chatrelay.engine.base import Engine
from chatrelay.exceptions import EngineError
from tests.timing import seconds
from tests.unit.engine.conftest import eventually, frame, next_event_offset, redis_broker


async def test_one_pubsub_connection_serves_every_subscription(
    engine: Engine, admin: Redis
) -> None:
    broker = redis_broker(engine)
    async with (
        broker.subscribe("s1") as first,
        broker.subscribe("s1") as second,
        broker.subscribe("s2") as third,
        broker.subscribe("s3"),
    ):
        assert len(await admin.client_list(_type="pubsub")) == 1
        assert sorted(await admin.pubsub_channels()) == [
            b"chat:stream:s1",
            b"chat:stream:s2",
            b"chat:stream:s3",
        ]
        await broker.publish("s2", frame(1))
        await broker.publish("s1", frame(1))
        assert await next_event_offset(first) == await next_event_offset(second) == 1
        assert await next_event_offset(third) == 1

    async def unsubscribed() -> bool:
        return await admin.pubsub_channels() == []

    await eventually(unsubscribed)


async def test_subscription_resumes_after_its_connection_is_killed(
    engine: Engine, admin: Redis
) -> None:
    broker = redis_broker(engine)
    async with broker.subscribe("s1") as subscription:
        subscription.on_reconnect = (reconnected := asyncio.Event()).set
        await broker.publish("s1", frame(1))
        assert await next_event_offset(subscription) == 1
        assert await admin.client_kill_filter(_type="pubsub") == 1
        async with asyncio.timeout(seconds(5)):
            await reconnected.wait()
        assert subscription.reconnects == 1 and broker.pubsub_reconnects == 1
        await broker.publish("s1", frame(2))
        assert await next_event_offset(subscription) == 2


async def test_a_silent_subscription_keeps_its_connection_past_the_command_timeout(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_client, "COMMAND_TIMEOUT", 0.2)
    engine = create_engine(redis_url, node_id="test")
    try:
        broker = redis_broker(engine)
        async with broker.subscribe("s1") as subscription:
            await asyncio.sleep(1.0)  # five command timeouts without a message
            await broker.publish("s1", frame(1))
            assert await next_event_offset(subscription) == 1
            assert subscription.reconnects == 0 and broker.pubsub_reconnects == 0
    finally:
        await engine.aclose()


async def test_subscribing_while_reconnecting_waits_for_the_new_connection(
    engine: Engine, admin: Redis
) -> None:
    broker = redis_broker(engine)
    async with broker.subscribe("s1"):
        await admin.client_kill_filter(_type="pubsub")
        async with broker.subscribe("s2") as late:
            await broker.publish("s2", frame(1))
            assert await next_event_offset(late) == 1
            # It missed nothing; if it joined before the reader noticed the kill, it is
            # flagged as reconnected anyway (a harmless, conservative catch-up).
            assert late.reconnects <= 1


async def test_subscribe_churn_leaves_exact_bookkeeping(engine: Engine, admin: Redis) -> None:
    broker = redis_broker(engine)

    async def churn() -> None:
        for _ in range(10):
            async with broker.subscribe("s1"):
                await asyncio.sleep(0)

    await asyncio.gather(*(churn() for _ in range(10)))
    async with broker.subscribe("s1") as subscription:
        await broker.publish("s1", frame(1))
        assert await next_event_offset(subscription) == 1
        assert await admin.pubsub_numsub("chat:stream:s1") == [(b"chat:stream:s1", 1)]


async def test_full_subscriber_queue_drops_and_counts(redis_url: str) -> None:
    engine = create_engine(redis_url, subscriber_queue_size=3)
    broker = redis_broker(engine)
    try:
        async with broker.subscribe("s1") as subscription:
            for n in range(1, 11):
                await broker.publish("s1", frame(n))

            async def all_routed() -> bool:
                return subscription.dropped == 7

            await eventually(all_routed)
            assert [await next_event_offset(subscription) for _ in range(3)] == [1, 2, 3]
            assert broker.dropped_live_events == 7
    finally:
        await engine.aclose()


async def test_aclose_ends_subscriptions_and_stops_the_reader(redis_url: str) -> None:
    engine = create_engine(redis_url)
    broker = redis_broker(engine)
    async with broker.subscribe("s1") as subscription:
        reader = broker._pubsub._task
        consumer = asyncio.create_task(anext(aiter(subscription), None))
        await asyncio.sleep(0)
        await engine.aclose()
        async with asyncio.timeout(seconds(5)):
            assert await consumer is None
    assert reader is not None and reader.done()
    with pytest.raises(EngineError):
        async with broker.subscribe("s1"):
            pass


async def test_subscribe_gives_up_in_time_when_redis_is_unreachable(
    closed_redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(redis_pubsub, "SUBSCRIBE_TIMEOUT", 0.3)
    engine = create_engine(closed_redis_url)
    broker = redis_broker(engine)
    try:
        with pytest.raises(EngineError):
            async with broker.subscribe("s1"):
                pass
        assert broker._pubsub._channels == {}
    finally:
        await engine.aclose()
    assert "pub/sub connect failed" in caplog.text


async def test_a_silent_pubsub_connection_is_noticed_and_replaced(
    redis_server: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A frozen Redis (SIGSTOP) keeps its TCP connections open but says nothing,
    # like a host that vanished without closing them.
    monkeypatch.setattr(redis_pubsub, "PUBSUB_PING_INTERVAL", 0.2)
    engine = create_engine(redis_url)
    broker = redis_broker(engine)
    try:
        async with broker.subscribe("s1") as subscription:
            subscription.on_reconnect = (reconnected := asyncio.Event()).set
            redis_server.process.signal(signal.SIGSTOP)
            try:
                await asyncio.sleep(1.0)  # silent, PING unanswered: the connection is dropped
            finally:
                redis_server.process.signal(signal.SIGCONT)
            async with asyncio.timeout(seconds(10)):
                await reconnected.wait()
            assert broker.pubsub_reconnects >= 1
            await broker.publish("s1", frame(1))
            assert await next_event_offset(subscription) == 1
    finally:
        await engine.aclose()


async def test_an_idle_pubsub_connection_that_answers_its_pings_is_kept(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Before the fix a PONG counted only if it came within the last interval, so an
    # idle connection was dropped (and every channel repaired) every other PING.
    monkeypatch.setattr(redis_pubsub, "PUBSUB_PING_INTERVAL", 0.1)
    engine = create_engine(redis_url)
    broker = redis_broker(engine)
    try:
        async with broker.subscribe("s1") as subscription:
            await asyncio.sleep(1.5)  # about seven PINGs, each answered at once
            assert broker.pubsub_reconnects == 0 and subscription.reconnects == 0
            await broker.publish("s1", frame(1))
            assert await next_event_offset(subscription) == 1
    finally:
        await engine.aclose()
    assert "did not answer a pub/sub PING" not in caplog.text
