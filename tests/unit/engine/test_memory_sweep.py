"""The memory engine forgets what nobody uses (issue 17 finding 5): in process, on a moved clock.

The sweep is called directly with a ``now`` past every expiry, as its task
would after that long; what a user would notice is checked: memory comes
back, and a client holding an offset of a forgotten log is told to reset.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from pathlib import Path

from chatrelay.engine import create_engine
from chatrelay.engine.base import USER_SESSIONS_TTL, Connection, Engine
from chatrelay.engine.broker_memory import MemoryBroker
from chatrelay.engine.coordination_memory import MemoryCoordination
from chatrelay.engine.registry_memory import MemoryRegistry
from tests.app.inprocess import new_session, new_user, running_app
from tests.timing import seconds, wait_until

CHURN = 3000
LOG_TTL = 300.0
# Past every expiry of the churn: logs (log_ttl), recent sessions (30 min), leases, cancels.
LATER = 2 * USER_SESSIONS_TTL
# What the sweep may leave of the churn's peak: dicts keep their tables, the rest must go.
LEFT_OF_PEAK = 0.1


def memory_engine() -> tuple[Engine, MemoryBroker]:
    engine = create_engine("memory://", log_ttl=LOG_TTL)
    assert isinstance(engine.broker, MemoryBroker)
    return engine, engine.broker


async def visit(engine: Engine, n: int) -> None:
    """A connect and close without a chat, with what a chat would leave in coordination."""
    session, user = f"s{n}", f"u{n}"
    connection = Connection(f"c{n}", session, user, "node-1")
    assert await engine.registry.register(connection, seconds(60), max_per_user=5)
    async with engine.broker.subscribe(session):
        await engine.broker.position(session)
    await engine.registry.unregister(connection)
    lease = await engine.coordination.acquire(f"gen:{session}", seconds(60), f"m{n}")
    assert lease is not None
    await engine.coordination.release(lease)
    await engine.coordination.request_cancel("s1", f"m{n}")
    await engine.coordination.take_token(f"rate:{user}", capacity=5, refill_per_second=1)


async def test_finding_5_the_memory_engine_forgets_3000_idle_sessions() -> None:
    engine, broker = memory_engine()
    try:
        await visit(engine, -1)  # warm up what is made once
        broker.sweep(time.monotonic() + LATER)
        gc.collect()
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            for n in range(CHURN):
                await visit(engine, n)
            assert broker.log_count == CHURN
            peak = tracemalloc.get_traced_memory()[0]
            forgotten = broker.sweep(time.monotonic() + LATER)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert forgotten == CHURN
        assert broker.log_count == 0
        assert await engine.registry.user_sessions("u1") == set()
        assert (after - start) < LEFT_OF_PEAK * (peak - start), (start, peak, after)
    finally:
        await engine.aclose()


async def test_finding_5_a_client_of_a_forgotten_log_is_told_to_reset(tmp_path: Path) -> None:
    engine, broker = memory_engine()
    user, session = new_user(), new_session()
    async with running_app(tmp_path / "chatrelay.db", engine) as app:
        first = await app.connect(session_id=session, user_id=user)
        turn = await first.follow(await first.chat("hello"))
        epoch, offset = first.welcome["epoch"], first.offsets()[-1]
        await first.close()

        async def forgotten() -> bool:
            broker.sweep(time.monotonic() + LOG_TTL + 1)
            return (await broker.position(session))[0] != epoch

        await wait_until(forgotten, "the idle log forgotten", seconds(5))
        back = await app.connect(session_id=session, user_id=user)
        assert back.welcome["epoch"] != epoch and back.welcome["offset"] == 0
        await back.resume(epoch, offset)
        reset = await back.recv_type("reset")
        assert (reset["epoch"], reset["offset"]) == (back.welcome["epoch"], 0)
        assert (await app.history(session, user))[-1]["content"] == turn.text


async def test_the_sweep_keeps_what_is_in_use_and_drops_expired_events() -> None:
    engine, broker = memory_engine()
    try:
        async with broker.subscribe("watched"):
            for n in range(3):
                await broker.publish("watched", {"type": "chunk", "seq": n})
            await broker.publish("recent", {"type": "chunk", "seq": 1})
            epoch, _ = await broker.position("watched")
            assert broker.sweep(time.monotonic() + LOG_TTL / 2) == 0  # nothing expired yet
            assert broker.sweep(time.monotonic() + LOG_TTL + 1) == 1  # "recent" went idle
            history = await broker.history("watched", since=0)
        assert (history.epoch, history.latest, history.events) == (epoch, 3, [])
        assert not history.complete  # the events expired: reload from the store
    finally:
        await engine.aclose()


async def test_the_sweep_runs_as_a_task_that_aclose_stops() -> None:
    engine, broker = memory_engine()

    def sweepers() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "memory-sweep" and not t.done()]

    assert sweepers() == []  # started by the first use, not by construction
    await broker.position("s1")
    assert len(sweepers()) == 1
    await engine.aclose()
    assert sweepers() == []
    await broker.position("s2")  # a closed broker starts no new task
    assert sweepers() == []


async def test_coordination_forgets_lapsed_entries_and_fencing_still_grows() -> None:
    coordination = MemoryCoordination()
    old = await coordination.acquire("gen:s1", seconds(10), "m1")
    held = await coordination.acquire("gen:s2", seconds(10), "m2")
    assert old is not None and held is not None
    await coordination.release(old)
    await coordination.request_cancel("s1", "m1", ttl=seconds(10))
    for _ in range(3):
        await coordination.take_token("rate:u1", capacity=3, refill_per_second=1)
    assert coordination.sweep(time.monotonic()) == 0  # all still in force
    assert await coordination.lease_holder("gen:s2") == "m2"
    assert coordination.sweep(time.monotonic() + seconds(10) + 4) == 3  # lease, cancel, bucket
    again = await coordination.acquire("gen:s1", seconds(10), "m3")
    assert again is not None and again.token > held.token > old.token
    assert await coordination.take_token("rate:u1", capacity=3, refill_per_second=1) == 0.0


async def test_the_registry_sweep_forgets_expired_sockets_and_recent_sessions() -> None:
    registry = MemoryRegistry()
    assert await registry.register(Connection("c1", "s1", "ana", "gw-dead"), seconds(10))
    assert registry.sweep(time.monotonic()) == 0
    assert registry.sweep(time.monotonic() + seconds(10) + 1) == 1
    assert await registry.user_sessions("ana") == {"s1"}  # kept 30 minutes
    registry.sweep(time.monotonic() + USER_SESSIONS_TTL + 1)
    assert await registry.user_sessions("ana") == set()
