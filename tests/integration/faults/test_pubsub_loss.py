"""Redis drops the gateways' pub/sub connections (``CLIENT KILL TYPE pubsub``) mid-stream.

Live delivery is at-most-once: whatever was published while a gateway was
resubscribing never reaches it live. Its relay fills the hole from the log,
so the clients (who stay connected) see every chunk once.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as redis

from chatrelay.llm.simulated import LONG_ANSWER
from tests.fixtures.cluster import RunningCluster
from tests.integration.faults.observed import Observed, check_invariants, new_session, new_user
from tests.timing import seconds


async def test_killing_the_pubsub_connections_loses_no_chunk(
    cluster: RunningCluster, gateway_sources: dict[str, str]
) -> None:
    user = new_user()
    clients = [
        await Observed.open(cluster.ws, new_session(), user, source)
        for source in gateway_sources.values()
        for _ in range(2)
    ]
    admin = redis.Redis.from_url(cluster.node("redis").url)
    try:
        message_ids = [await c.chat(f"explain pub/sub {i}") for i, c in enumerate(clients)]
        killed = 0
        for round_ in range(3):
            await clients[0].wait_chunks(message_ids[0], 20 + 50 * round_)
            killed += await admin.client_kill_filter(_type="pubsub")
        for client, message_id in zip(clients, message_ids, strict=True):
            complete = await client.wait_complete(message_id, seconds(30))
            assert complete["status"] == "completed"
            assert client.turn(message_id).text == LONG_ANSWER
            assert client.client.connects == 1  # repaired inside the gateway, not by resume
            await check_invariants(client)
        assert killed >= 3
        logs = "".join(g.log_text() for g in cluster.of_role("gateway"))
        assert "Redis pub/sub reconnected" in logs
        print(
            f"\npub/sub kill: {killed} connections killed in 3 rounds, {len(clients)} streams whole"
        )
    finally:
        await admin.aclose()
        await asyncio.gather(*(c.close() for c in clients))
