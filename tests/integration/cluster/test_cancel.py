"""Cancel from another gateway, landing on another worker, still stops the generation.

The cancel flag lives in the engine, not in the memory of the worker that
generates: any worker that receives ``POST /cancel`` sets it, and the
generating worker sees it before its next chunk. On one Redis and on a
3-master Redis Cluster (``each_cluster``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chatrelay.llm.simulated import LONG_ANSWER
from chatrelay.wire_client import WireClient
from tests.fixtures.cluster import RunningCluster
from tests.integration.cluster.clients import (
    changed,
    connect,
    http,
    new_session,
    new_user,
    wait_for_log,
    worker_requests,
)
from tests.timing import seconds, wait_until

# The cancel call may race one chunk already on its way through the relay,
# and the worker may publish one more before it next checks the flag.
MAX_CHUNKS_AFTER_CANCEL = 2
# Round robin on two gateways can line the cancel up with the generating
# worker; each retry shifts one gateway's turn, so three tries always suffice.
ATTEMPTS = 3


async def test_cancel_through_another_gateway_and_another_worker_stops_within_a_chunk(
    each_cluster: RunningCluster, each_gateway_sources: dict[str, str]
) -> None:
    assert len(each_gateway_sources) >= 2, each_gateway_sources
    (start_node, start_source), (cancel_node, cancel_source) = list(each_gateway_sources.items())[
        :2
    ]
    start_gateway, cancel_gateway = each_cluster.node(start_node), each_cluster.node(cancel_node)
    user = new_user()

    for _ in range(ATTEMPTS):
        session = new_session()
        client = await connect(each_cluster, start_source, session_id=session, user_id=user)
        assert client.welcome["node"] == start_node

        before = await worker_requests(start_gateway.url)
        message_id = await client.chat("explain the stream in detail")
        generating = changed(before, await worker_requests(start_gateway.url))
        assert len(generating) == 1, generating

        arrivals: list[tuple[float, dict[str, Any]]] = []
        reader = asyncio.create_task(_read_until_complete(client, message_id, arrivals))
        try:
            await _wait_chunks(arrivals, 3)
            before = await worker_requests(cancel_gateway.url)
            async with http(each_cluster, cancel_source) as rest:
                health = (await rest.get("/api/health")).json()
                assert health["node"] == cancel_node
                response = await rest.post(
                    "/api/cancel",
                    json={"session_id": session, "message_id": message_id},
                    params={"user_id": user},
                )
            cancelled_at = time.monotonic()
            assert response.status_code == 200, response.text
            cancelling = changed(before, await worker_requests(cancel_gateway.url))
            assert len(cancelling) == 1, cancelling
            complete = await asyncio.wait_for(reader, seconds(15))
        finally:
            reader.cancel()
        await client.close()

        chunks = [frame for _, frame in arrivals if frame["type"] == "chunk"]
        late = [frame for at, frame in arrivals if frame["type"] == "chunk" and at > cancelled_at]
        seen = "".join(chunk["delta"] for chunk in chunks)
        assert complete["status"] == "cancelled", complete
        assert complete["content"] == seen
        assert LONG_ANSWER.startswith(seen) and len(seen) < len(LONG_ANSWER)
        assert len(late) <= MAX_CHUNKS_AFTER_CANCEL, (len(late), len(chunks))

        generator = each_cluster.node_by_url(generating[0]).node_id
        finished = await asyncio.to_thread(
            wait_for_log,
            each_cluster,
            rf"generation finished .*message_id={message_id} status=cancelled",
        )
        assert list(finished) == [generator], finished
        if cancelling != generating:
            return  # a worker that never ran the generation cancelled it
        # Shift the starting gateway's round robin by one and try again.
        async with http(each_cluster, start_source) as rest:
            response = await rest.post(
                "/api/chat",
                json={"message": "hello", "session_id": new_session()},
                headers={"X-User-Id": user},
            )
            assert response.status_code == 202, response.text
    raise AssertionError(f"the cancel landed on the generating worker {ATTEMPTS} times")


async def _read_until_complete(
    client: WireClient, message_id: str, arrivals: list[tuple[float, dict[str, Any]]]
) -> dict[str, Any]:
    while True:
        frame = await client.recv(seconds(15))
        if frame.get("message_id") != message_id:
            continue
        arrivals.append((time.monotonic(), frame))
        if frame["type"] == "complete":
            return frame


async def _wait_chunks(arrivals: list[tuple[float, dict[str, Any]]], count: int) -> None:
    await wait_until(
        lambda: sum(1 for _, frame in arrivals if frame["type"] == "chunk") >= count,
        f"{count} chunks",
        seconds(15),
    )
