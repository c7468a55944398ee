"""The connection registry on the memory engine's registry: limits, heartbeats, drain.

The last test races sockets over two in-process apps on one real Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from websockets.exceptions import ConnectionClosed

from chatrelay.engine import create_engine
from chatrelay.engine.base import Connection, Registry
from chatrelay.exceptions import HandshakeRefused
from chatrelay.gateway import close_codes
from chatrelay.gateway.connections import ConnectionRegistry
from chatrelay.wire_client import WireClient
from tests.app.inprocess import InProcessApp, new_user, running_app
from tests.timing import seconds

# Finding 10's race: this many sockets of one user at once, against this limit.
RACING_SOCKETS = 200
SOCKET_LIMIT = 50

# Loop turns a woken drain may take to finish: a few, where a 50 ms poll would need thousands.
LOOP_TURNS = 5


class Socket:
    """What the registry needs of a socket: it records the reconnects it is sent."""

    def __init__(self) -> None:
        self.reconnects: list[str] = []
        self.told = asyncio.Event()

    def send_reconnect(self, reason: str) -> None:
        self.reconnects.append(reason)
        self.told.set()


def connection(n: int, user: str = "ana") -> Connection:
    return Connection(f"c{n}", f"s{n}", user, "node-1")


@contextlib.asynccontextmanager
async def registry(
    engine: Registry,
    *,
    ttl: float = 60.0,
    max_per_user: int = 50,
    drain_timeout: float = 60.0,
    drain_hooks: Iterable[Callable[[], Awaitable[None]]] = (),
) -> AsyncIterator[ConnectionRegistry]:
    async with ConnectionRegistry(
        engine,
        ttl=ttl,
        max_per_user=max_per_user,
        drain_timeout=drain_timeout,
        drain_hooks=drain_hooks,
        node_id="node-1",
    ) as running:
        yield running


def open_sockets_gauge() -> float:
    value = REGISTRY.get_sample_value("chatrelay_open_sockets")
    assert value is not None
    return value


async def test_an_open_socket_is_registered_counted_and_forgotten() -> None:
    engine = create_engine("memory://").registry
    before = open_sockets_gauge()
    async with registry(engine) as sockets:
        async with sockets.open(connection(1), Socket()):
            assert await engine.session_connections("s1") == [connection(1)]
            assert sockets.count == 1
            assert open_sockets_gauge() == before + 1
        assert await engine.session_connections("s1") == []
        assert sockets.count == 0
        assert open_sockets_gauge() == before


async def test_a_user_over_the_limit_is_refused_with_4429() -> None:
    engine = create_engine("memory://").registry
    async with registry(engine, max_per_user=2) as sockets:
        async with sockets.open(connection(1), Socket()), sockets.open(connection(2), Socket()):
            with pytest.raises(HandshakeRefused) as refused:
                async with sockets.open(connection(3), Socket()):
                    pass
            assert refused.value.code == close_codes.TOO_MANY == 4429
            async with sockets.open(connection(4, "bob"), Socket()):
                pass  # the limit is per user
        async with sockets.open(connection(5), Socket()):
            assert sockets.count == 1  # room again once they left


async def test_finding_10_racing_sockets_open_no_more_than_the_limit() -> None:
    engine = create_engine("memory://").registry
    outcomes: list[int] = []
    everyone_tried = asyncio.Event()

    def settle(outcome: int) -> None:
        outcomes.append(outcome)
        if len(outcomes) == RACING_SOCKETS:
            everyone_tried.set()

    async with registry(engine, max_per_user=SOCKET_LIMIT) as sockets:

        async def knock(n: int) -> None:
            try:
                async with sockets.open(connection(n), Socket()):
                    settle(0)
                    await everyone_tried.wait()  # hold the socket until every other tried
            except HandshakeRefused as refused:
                settle(refused.code)

        async with asyncio.timeout(seconds(5)):
            await asyncio.gather(*(knock(n) for n in range(RACING_SOCKETS)))
    assert outcomes.count(0) == SOCKET_LIMIT
    assert outcomes.count(close_codes.TOO_MANY) == RACING_SOCKETS - SOCKET_LIMIT


async def test_drain_tells_every_socket_and_ends_when_the_last_one_leaves() -> None:
    engine = create_engine("memory://").registry
    hooked_with: list[int] = []
    first, second = Socket(), Socket()

    async def hook() -> None:
        hooked_with.append(sockets.count)

    async with registry(engine, drain_hooks=[hook]) as sockets:
        leave_first, leave_second = asyncio.Event(), asyncio.Event()
        both_open = asyncio.Barrier(3)

        async def hold(n: int, socket: Socket, leave: asyncio.Event) -> None:
            async with sockets.open(connection(n), socket):
                await both_open.wait()
                await leave.wait()

        holders = [
            asyncio.create_task(hold(1, first, leave_first)),
            asyncio.create_task(hold(2, second, leave_second)),
        ]
        async with asyncio.timeout(seconds(5)):
            await both_open.wait()
            drain = asyncio.create_task(sockets.drain())
            await first.told.wait()
            await second.told.wait()
            assert first.reconnects == second.reconnects == ["node draining"]

            leave_first.set()
            await holders[0]
            assert not drain.done()
            leave_second.set()
            await holders[1]
            await drain
    assert hooked_with == [0]


async def test_a_drain_wakes_on_the_last_leave_without_polling() -> None:
    engine = create_engine("memory://").registry
    async with registry(engine) as sockets:
        leave = asyncio.Event()
        entered = asyncio.Event()

        async def hold() -> None:
            async with sockets.open(connection(1), Socket()):
                entered.set()
                await leave.wait()

        holder = asyncio.create_task(hold())
        await entered.wait()
        drain = asyncio.create_task(sockets.drain())
        await asyncio.sleep(0)
        leave.set()
        await holder
        for _ in range(LOOP_TURNS):
            if drain.done():
                break
            await asyncio.sleep(0)
        assert drain.done()


async def test_a_drain_waits_no_longer_than_its_timeout_then_runs_the_hooks() -> None:
    engine = create_engine("memory://").registry
    hooks_ran = asyncio.Event()

    async def hook() -> None:
        hooks_ran.set()

    async with (
        registry(engine, drain_timeout=seconds(0.2), drain_hooks=[hook]) as sockets,
        sockets.open(connection(1), Socket()),  # a socket that never leaves
    ):
        async with asyncio.timeout(seconds(5)):
            await sockets.drain()
        assert hooks_ran.is_set()
        assert sockets.count == 1


async def test_a_draining_registry_refuses_new_sockets_with_1013() -> None:
    engine = create_engine("memory://").registry
    async with registry(engine) as sockets:
        await sockets.drain()  # nothing open: returns at once
        assert sockets.draining
        with pytest.raises(HandshakeRefused) as refused:
            async with sockets.open(connection(1), Socket()):
                pass
        assert refused.value.code == close_codes.OVERLOADED == 1013
        assert await engine.session_connections("s1") == []


async def test_heartbeats_keep_registrations_alive_past_their_ttl() -> None:
    engine = create_engine("memory://").registry
    ttl = seconds(0.5)
    async with registry(engine, ttl=ttl) as sockets, sockets.open(connection(1), Socket()):
        await engine.register(connection(2), ttl)  # the same, with no heartbeat
        await asyncio.sleep(3 * ttl)  # the time itself is under test: three TTLs pass
        assert await engine.session_connections("s1") == [connection(1)]
        assert await engine.session_connections("s2") == []


async def knock(app: InProcessApp, user: str) -> int:
    """Open a socket for ``user``: 0 when welcomed (it stays open), else its close code."""
    socket = await app.socket(user_id=user)
    try:
        await WireClient(socket, timeout=seconds(10)).read_welcome()
    except ConnectionClosed:
        assert socket.close_code is not None
        return socket.close_code
    return 0


async def test_finding_10_two_gateways_on_one_redis_welcome_exactly_the_limit(
    redis_url: str, tmp_path: Path
) -> None:
    user = new_user()
    async with (
        running_app(tmp_path / "a.db", engine_url=redis_url, node_id="gw-a") as first,
        running_app(tmp_path / "b.db", engine_url=redis_url, node_id="gw-b") as second,
    ):
        assert first.settings.max_connections_per_user == SOCKET_LIMIT
        gateways = (first, second)
        async with asyncio.timeout(seconds(30)):
            codes = await asyncio.gather(
                *(knock(gateways[n % 2], user) for n in range(RACING_SOCKETS))
            )
    assert codes.count(0) == SOCKET_LIMIT
    assert codes.count(close_codes.TOO_MANY) == RACING_SOCKETS - SOCKET_LIMIT
