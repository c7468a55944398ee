"""What the Redis broker does beyond the contract: round trips, epochs, the log's keys.

The shared behaviour is in ``tests/contract/test_engine.py``; these tests look
at Redis itself (commands, keys) on a real ``redis-server``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from chatrelay.engine import create_engine, keys
from chatrelay.engine.base import Engine
from tests.timing import seconds
from tests.unit.engine.conftest import frame


def count_sent_commands(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record every command this process sends to Redis from now on (until ``undo``)."""
    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    async def counting(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(bytes(command[0] if isinstance(command, list) else command))
        await original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return sent


async def test_publish_is_one_round_trip_of_one_evalsha(
    engine: Engine, admin: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await engine.broker.publish("s1", frame(0))  # loads the script once
    await admin.config_resetstat()
    sent = count_sent_commands(monkeypatch)
    await engine.broker.publish("s1", frame(1))
    monkeypatch.undo()
    stats = await admin.info("commandstats")

    assert len(sent) == 1 and b"EVALSHA" in sent[0]
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert "cmdstat_eval" not in stats and "cmdstat_script|load" not in stats
    assert stats["cmdstat_publish"]["calls"] == 1  # issued by the script, inside Redis


async def test_a_fenced_publish_learns_of_a_cancel_in_the_same_round_trip(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = await engine.coordination.acquire("generation:s1", 10.0, "m1")
    assert lease is not None
    await engine.broker.publish("s1", frame(0), lease=lease, cancel_of="m1")  # loads the script
    sent = count_sent_commands(monkeypatch)
    first = await engine.broker.publish("s1", frame(1), lease=lease, cancel_of="m1")
    await engine.coordination.request_cancel("s1", "m1")  # from any node
    second = await engine.broker.publish("s1", frame(2), lease=lease, cancel_of="m1")
    monkeypatch.undo()
    assert (first.cancelled, second.cancelled) == (False, True)
    # publish, request_cancel, publish: the two cancel checks cost nothing.
    assert [c.split(b"\r\n")[2] for c in sent] == [b"EVALSHA", b"SET", b"EVALSHA"]


async def test_empty_frame_gets_valid_json(engine: Engine) -> None:
    event = (await engine.broker.publish("s1", {})).event
    assert orjson.loads(event.data) == {"offset": 1}
    assert (await engine.broker.history("s1")).events == [event]


async def test_live_and_logged_bytes_are_the_returned_bytes(engine: Engine) -> None:
    async with engine.broker.subscribe("s1") as subscription:
        published = await engine.broker.publish("s1", {"type": "chunk", "delta": 'é "x" /'})
        async with asyncio.timeout(seconds(5)):
            live = await anext(aiter(subscription))
    assert live == published.event
    assert (await engine.broker.history("s1")).events == [published.event]


async def test_offset_counter_outlives_the_stream(engine: Engine, admin: Redis) -> None:
    await engine.broker.publish("s1", frame(1))
    stream_ttl = await admin.pttl(keys.SESSION_LOG + "s1")
    meta_ttl = await admin.pttl(keys.SESSION_META + "s1")
    assert 0 < stream_ttl <= 300_000
    assert meta_ttl > 6 * 24 * 3600 * 1000


# -- epochs and history


async def test_flushed_redis_gives_a_new_epoch(engine: Engine, admin: Redis) -> None:
    for n in range(1, 4):
        await engine.broker.publish("s1", frame(n))
    before, _ = await engine.broker.position("s1")
    await admin.flushall()
    after, latest = await engine.broker.position("s1")
    assert after != before and latest == 0
    assert (await engine.broker.publish("s1", frame(1))).event.offset == 1
    history = await engine.broker.history("s1", since=0)
    assert history.epoch == after
    assert [event.offset for event in history.events] == [1]


async def test_lost_epoch_discards_the_old_stream(engine: Engine, admin: Redis) -> None:
    for n in range(1, 4):
        await engine.broker.publish("s1", frame(n))
    await admin.delete(keys.SESSION_META + "s1")  # as if evicted: the stream is orphaned
    assert (await engine.broker.publish("s1", frame(1))).event.offset == 1
    history = await engine.broker.history("s1", since=0)
    assert [event.offset for event in history.events] == [1] and history.complete


async def test_history_is_incomplete_when_the_stream_is_gone(engine: Engine, admin: Redis) -> None:
    for n in range(1, 4):
        await engine.broker.publish("s1", frame(n))
    await admin.delete(keys.SESSION_LOG + "s1")
    gone = await engine.broker.history("s1", since=0)
    assert (gone.latest, gone.events, gone.complete) == (3, [], False)
    assert (await engine.broker.history("s1", since=3)).complete


async def test_events_older_than_log_ttl_count_as_trimmed(redis_url: str) -> None:
    engine = create_engine(redis_url, log_ttl=0.2)
    try:
        await engine.broker.publish("s1", frame(1))
        await engine.broker.publish("s1", frame(2))
        await asyncio.sleep(0.3)
        old = await engine.broker.history("s1", since=0)
        assert (old.latest, old.events, old.complete) == (2, [], False)
        assert (await engine.broker.publish("s1", frame(3))).event.offset == 3
        recent = await engine.broker.history("s1", since=2)
        assert recent.complete and [event.offset for event in recent.events] == [3]
    finally:
        await engine.aclose()
