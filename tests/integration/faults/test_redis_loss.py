"""Redis dies and comes back empty: nodes stay up, clients reset, chat works again in 5 s.

While Redis is down every node answers ``/health`` with ``degraded``, a chat
gets ``unavailable`` and the socket stays open. Redis restarts with nothing
(``--save ''``): every session starts a new epoch, so the gateways tell their
sockets to ``reset``; the client reloads history, where the answer that was
streaming has a final status.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import httpx

from chatrelay.cluster.manifest import pid_alive
from tests.fixtures.cluster import RunningCluster
from tests.integration.faults.observed import (
    FINAL,
    ChatRefused,
    Observed,
    check_invariants,
    new_session,
    new_user,
    offset_problems,
)
from tests.timing import seconds, wait_until

BACK_WITHIN_SECONDS = 5.0


async def _health(cluster: RunningCluster) -> dict[str, tuple[int, str]]:
    async with httpx.AsyncClient(timeout=seconds(5)) as http:
        found = {}
        for node in cluster.of_role("gateway") + cluster.of_role("worker"):
            response = await http.get(f"{node.url}/health")
            found[node.node_id] = (response.status_code, response.json()["status"])
        return found


async def test_redis_restarted_empty_resets_clients_and_chat_works_again(
    cluster: RunningCluster, gateway_sources: dict[str, str]
) -> None:
    source = next(iter(gateway_sources.values()))
    observed = await Observed.open(cluster.ws, new_session(), new_user(), source)
    try:
        first = await observed.chat("hello before the outage")
        await observed.wait_complete(first)
        streaming = await observed.chat("explain what happens when redis dies")
        await observed.wait_chunks(streaming, 10)

        cluster.kill("redis", signal.SIGKILL)
        health = await _health(cluster)
        assert health == {node: (200, "degraded") for node in health}, health
        with_outage = observed.client.connects
        try:
            await observed.chat("hello during the outage", timeout=seconds(15))
        except ChatRefused as refused:
            assert refused.code == "unavailable", refused
        else:
            raise AssertionError("a chat was accepted while Redis was down")
        await observed.client.send({"type": "ping"})
        await observed.wait_for(lambda f: f["type"] == "pong", seconds(5), "pong")
        assert observed.client.connects == with_outage  # the socket stayed open
        nodes = cluster.of_role("gateway") + cluster.of_role("worker")
        assert all(pid_alive(node.pid) for node in nodes)

        assert cluster.restart_dead() == ["redis"]
        back_at = time.monotonic()
        reset = await observed.wait_for(lambda f: f["type"] == "reset", seconds(10), "reset")
        reset_after = time.monotonic() - back_at

        # Chat works again within 5 s of Redis being back (retrying what is refused).
        accepted_after = None
        while accepted_after is None:
            try:
                answer = await observed.chat("hello after the outage")
                accepted_after = time.monotonic() - back_at
            except ChatRefused as refused:
                assert refused.code == "unavailable", refused
                assert time.monotonic() - back_at < seconds(BACK_WITHIN_SECONDS), refused
                await asyncio.sleep(0.1)  # a user's retry pause, not a wait for an event
        assert accepted_after < seconds(BACK_WITHIN_SECONDS)
        done = await observed.wait_complete(answer, seconds(20))
        assert done["status"] == "completed", done

        # The history reload shows the answer that was streaming, ended.
        stored: dict[str, dict[str, Any]] = {}

        async def streaming_ended() -> bool:
            stored.update((m["id"], m) for m in await observed.history())
            return stored[streaming]["status"] in FINAL

        await wait_until(streaming_ended, "the streaming answer ended in history", seconds(15))
        assert stored[first]["status"] == "completed"
        assert not offset_problems(observed)
        await check_invariants(observed)
        assert (await _health(cluster)) == {node: (200, "ok") for node in health}
        print(
            f"\nRedis restarted empty: reset {reset_after:.2f}s after it was back "
            f"(epoch {reset['epoch']}), chat accepted again after {accepted_after:.2f}s; "
            f"the interrupted answer stored as {stored[streaming]['status']} with "
            f"{len(stored[streaming]['content'])} chars"
        )
    finally:
        await observed.close()
