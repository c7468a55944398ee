"""A worker dies mid-answer: the answer goes on elsewhere and completes, in time.

The answer's lease (3 s here) expires, a reaper on the surviving worker finds
the message ``streaming`` with nobody holding it and continues it there
(failover, test_worker_failover.py has the rest). The session's next chat goes
to the other worker.
"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from chatrelay.llm.simulated import LONG_ANSWER
from tests.fixtures.cluster import RunningCluster
from tests.integration.faults.conftest import LEASE_TTL
from tests.integration.faults.observed import Observed, check_invariants, new_session, new_user
from tests.timing import seconds


async def _running_worker(cluster: RunningCluster) -> str:
    """The worker whose ``/health`` says it runs a generation."""
    deadline = time.monotonic() + seconds(10)
    async with httpx.AsyncClient(timeout=seconds(5)) as http:
        while time.monotonic() < deadline:
            for worker in cluster.of_role("worker"):
                if (await http.get(f"{worker.url}/health")).json()["running"]:
                    return worker.node_id
            await asyncio.sleep(0.05)
    raise AssertionError("no worker says it runs the generation")


async def test_worker_sigkill_mid_answer_is_continued_within_lease_ttl(
    cluster: RunningCluster, gateway_sources: dict[str, str]
) -> None:
    source = next(iter(gateway_sources.values()))
    observed = await Observed.open(cluster.ws, new_session(), new_user(), source)
    try:
        message_id = await observed.chat("explain what happens when a worker dies")
        await observed.wait_chunks(message_id, 20)
        victim = await _running_worker(cluster)
        cluster.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        complete = await observed.wait_complete(message_id, seconds(LEASE_TTL + 15))
        waited = time.monotonic() - killed_at
        assert complete["status"] == "completed", complete
        assert complete["usage"]["continued"] == 1
        resumed_seq = complete["usage"]["resumed"][0]["seq"]
        partial = "".join(c["delta"] for c in observed.turn(message_id).chunks[:resumed_seq])
        assert observed.turn(message_id).text == complete["content"] == LONG_ANSWER
        await check_invariants(observed)  # stored completed, with that same text

        # The next chat of the session runs on the other worker.
        again = await observed.chat("hello after the crash")
        done = await observed.wait_complete(again, seconds(20))
        assert done["status"] == "completed", done
        survivor = next(w for w in cluster.of_role("worker") if w.node_id != victim)
        assert f"message_id={again}" in survivor.log_text()
        await check_invariants(observed)
        print(
            f"\nworker SIGKILL: the continued answer ended {waited:.1f}s after the kill "
            f"(lease TTL {LEASE_TTL:.0f}s), resumed after {len(partial)} of "
            f"{len(LONG_ANSWER)} chars"
        )
    finally:
        await observed.close()
