"""A gateway dies (SIGKILL) or drains (SIGTERM) mid-stream: clients finish elsewhere, whole.

Three sessions stream long answers through the gateway about to go; one of
them is also watched from the other gateway. Clients reconnect through nginx
(which goes to the next gateway when the chosen one is down), resume from
their offset, and must end up with exactly the stored text.
"""

from __future__ import annotations

import signal
import time

from chatrelay.cluster.manifest import pid_alive
from chatrelay.llm.simulated import LONG_ANSWER
from tests.fixtures.cluster import RunningCluster
from tests.integration.faults.observed import (
    Observed,
    check_invariants,
    new_session,
    new_user,
    offset_problems,
)
from tests.timing import seconds

SESSIONS = 3
CHUNKS_BEFORE_FAULT = 15


async def _stream_through_a_lost_gateway(
    cluster: RunningCluster, gateway_sources: dict[str, str], signum: int
) -> tuple[list[Observed], str]:
    victim, source = min(gateway_sources.items())
    other_source = next(s for node, s in gateway_sources.items() if node != victim)
    user = new_user()
    sessions = [new_session() for _ in range(SESSIONS)]
    clients = [await Observed.open(cluster.ws, session, user, source) for session in sessions]
    victim = clients[0].client.node or victim  # nginx may have routed elsewhere; follow it
    assert all(c.client.node == victim for c in clients), [c.client.node for c in clients]
    watcher = await Observed.open(cluster.ws, sessions[0], user, other_source)
    assert watcher.client.node != victim
    try:
        message_ids = [await c.chat(f"explain the journey {i}") for i, c in enumerate(clients)]
        for client, message_id in zip(clients, message_ids, strict=True):
            await client.wait_chunks(message_id, CHUNKS_BEFORE_FAULT)
        pid = cluster.node(victim).pid
        assert pid is not None
        cluster.kill(victim, signum)
        assert not pid_alive(pid)
        for client, message_id in zip(clients, message_ids, strict=True):
            complete = await client.wait_complete(message_id, seconds(60))
            assert complete["status"] == "completed", complete
            assert client.turn(message_id).text == LONG_ANSWER, offset_problems(client)
            assert client.client.connects >= 2
            assert client.client.node != victim, client.client.node
        await watcher.wait_complete(message_ids[0], seconds(60))
        for observed in [*clients, watcher]:
            await check_invariants(observed)
        assert watcher.client.connects == 1  # the other gateway's socket never noticed
        return clients, victim
    finally:
        for observed in [*clients, watcher]:
            await observed.close()


async def test_gateway_sigkill_mid_stream_loses_and_repeats_nothing(
    cluster: RunningCluster, gateway_sources: dict[str, str]
) -> None:
    started = time.monotonic()
    clients, victim = await _stream_through_a_lost_gateway(cluster, gateway_sources, signal.SIGKILL)
    print(
        f"\ngateway SIGKILL: {len(clients)} sessions moved off {victim} and finished "
        f"in {time.monotonic() - started:.1f}s; duplicates dropped by clients: "
        f"{sum(c.client.duplicates for c in clients)}"
    )


async def test_gateway_sigterm_drains_with_reconnect_and_1012(
    cluster: RunningCluster, gateway_sources: dict[str, str]
) -> None:
    started = time.monotonic()
    clients, victim = await _stream_through_a_lost_gateway(cluster, gateway_sources, signal.SIGTERM)
    for observed in clients:
        assert observed.client.reconnect_frames >= 1
        assert 1012 in observed.client.close_codes, observed.client.close_codes
    assert "draining" in cluster.node(victim).log_text()
    print(
        f"\ngateway SIGTERM: {len(clients)} sessions drained off {victim} and finished "
        f"in {time.monotonic() - started:.1f}s; close codes "
        f"{[c.client.close_codes for c in clients]}"
    )
