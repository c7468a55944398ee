"""A worker stops mid-answer: another worker goes on with the same answer (issue 13).

The fault cluster's leases live 3 s. When the worker serving answers is
SIGKILLed (or SIGSTOPped), their leases expire, the reaper's leader (the
surviving worker) continues each one: same message, a new lease, chunk seq and
log offsets going on. Every client sees one whole answer, word for word the
simulated model's uninterrupted one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import httpx

from chatrelay.llm.simulated import LONG_ANSWER
from tests.fixtures.cluster import RunningCluster
from tests.integration.faults.conftest import LEASE_TTL
from tests.integration.faults.observed import Observed, check_invariants, new_session, new_user
from tests.timing import seconds, wait_until

ANSWERS = 5


async def _busiest_worker(cluster: RunningCluster) -> str:
    """The worker whose ``/health`` says it runs the most generations."""
    deadline = time.monotonic() + seconds(10)
    async with httpx.AsyncClient(timeout=seconds(5)) as http:
        while time.monotonic() < deadline:
            running = {
                worker.node_id: (await http.get(f"{worker.url}/health")).json()["running"]
                for worker in cluster.of_role("worker")
            }
            busiest = max(running, key=lambda node: running[node])
            if running[busiest]:
                return busiest
            await asyncio.sleep(0.05)
    raise AssertionError("no worker says it runs a generation")


async def _open(cluster: RunningCluster, sources: dict[str, str], count: int) -> list[Observed]:
    addresses = list(sources.values())
    return [
        await Observed.open(cluster.ws, new_session(), new_user(), addresses[i % len(addresses)])
        for i in range(count)
    ]


async def test_sigkill_mid_answer_every_answer_completes_word_for_word(
    cluster: RunningCluster, gateway_sources: dict[str, str]
) -> None:
    clients = await _open(cluster, gateway_sources, ANSWERS)
    try:
        ids = [await c.chat(f"explain failover, please ({i})") for i, c in enumerate(clients)]
        await asyncio.gather(*(c.wait_chunks(m, 20) for c, m in zip(clients, ids, strict=True)))
        victim = await _busiest_worker(cluster)
        cluster.kill(victim, signal.SIGKILL)
        completes = await asyncio.gather(
            *(
                c.wait_complete(m, seconds(LEASE_TTL + 20))
                for c, m in zip(clients, ids, strict=True)
            )
        )
        continued = 0
        for client, message_id, complete in zip(clients, ids, completes, strict=True):
            assert complete["status"] == "completed", complete
            assert client.turn(message_id).text == LONG_ANSWER
            assert complete["content"] == LONG_ANSWER
            usage = complete["usage"]
            if usage.get("continued"):
                continued += 1
                assert usage["continued"] == 1
                (resumed,) = usage["resumed"]
                assert 20 <= resumed["seq"] < len(LONG_ANSWER.split(" "))
                stored = {m["id"]: m for m in await client.history()}[message_id]
                assert stored["usage"]["continued"] == 1
                assert stored["usage"]["resumed"] == usage["resumed"]
            await check_invariants(client)  # offsets 1..n, seqs 1..n, stored == complete
        assert continued >= 1, "the killed worker served none of the answers"
    finally:
        for client in clients:
            await client.close()


async def test_sigstop_paused_worker_publishes_nothing_after_failover(
    cluster: RunningCluster, gateway_sources: dict[str, str]
) -> None:
    (client,) = await _open(cluster, gateway_sources, 1)
    try:
        message_id = await client.chat("explain fencing, please")
        await client.wait_chunks(message_id, 20)
        victim = await _busiest_worker(cluster)
        pid = cluster.node(victim).pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # paused, not dead: its lease expires
        try:
            complete = await client.wait_complete(message_id, seconds(LEASE_TTL + 20))
        finally:
            os.kill(pid, signal.SIGCONT)
        assert complete["status"] == "completed", complete
        assert complete["usage"]["continued"] == 1
        # The resumed worker tries to publish with its old token: fenced out.
        worker = cluster.node(victim)
        await wait_until(lambda: "lost its lease" in worker.log_text(), "fenced", seconds(10))
        assert client.turn(message_id).text == LONG_ANSWER
        await check_invariants(client)  # no chunk after the complete, no repeat
        assert client.frames[-1]["type"] == "complete"
    finally:
        await client.close()


async def test_every_serving_worker_killed_ends_interrupted_after_the_limit(
    cluster: RunningCluster, gateway_sources: dict[str, str]
) -> None:
    (client,) = await _open(cluster, gateway_sources, 1)
    try:
        message_id = await client.chat("explain what happens when every worker dies")
        seen = 10
        await client.wait_chunks(message_id, seen)
        # The first worker and then each continuation (MAX_CONTINUATIONS = 2) die.
        for _ in range(3):
            cluster.kill(await _busiest_worker(cluster), signal.SIGKILL)
            cluster.restart_dead()  # a live worker for the reaper, the dead one back
            if client.turn(message_id).complete is not None:
                break
            seen = len(client.turn(message_id).chunks)
            with contextlib.suppress(AssertionError):
                await client.wait_chunks(message_id, seen + 5, seconds(LEASE_TTL + 15))
        complete = await client.wait_complete(message_id, seconds(LEASE_TTL + 15))
        assert complete["status"] == "interrupted", complete
        text = client.turn(message_id).text
        assert complete["content"] == text and LONG_ANSWER.startswith(text)
        stored = {m["id"]: m for m in await client.history()}[message_id]
        assert stored["usage"]["continued"] == 2
        await check_invariants(client)  # nothing stays streaming
    finally:
        await client.close()


async def test_a_cancel_from_another_gateway_stops_the_continuation(
    cluster: RunningCluster, gateway_sources: dict[str, str]
) -> None:
    first, second = list(gateway_sources.values())[:2]
    session, user = new_session(), new_user()
    asker = await Observed.open(cluster.ws, session, user, first)
    watcher = await Observed.open(cluster.ws, session, user, second)
    try:
        message_id = await asker.chat("explain cancelling after a failover")
        await asker.wait_chunks(message_id, 20)
        cluster.kill(await _busiest_worker(cluster), signal.SIGKILL)
        await asyncio.sleep(0.5)  # the dead worker's last chunks still in flight
        before = len(asker.turn(message_id).chunks)
        # Chunks after that come from the continuation (the dead worker publishes nothing).
        await watcher.wait_chunks(message_id, before + 3, seconds(LEASE_TTL + 15))
        await watcher.client.cancel(message_id)
        complete = await asker.wait_complete(message_id, seconds(10))
        assert complete["status"] == "cancelled", complete
        assert complete["usage"]["continued"] == 1
        text = asker.turn(message_id).text
        assert complete["content"] == text and LONG_ANSWER.startswith(text)
        assert len(text) < len(LONG_ANSWER)
        await check_invariants(asker)
        await check_invariants(watcher)
    finally:
        await asker.close()
        await watcher.close()
