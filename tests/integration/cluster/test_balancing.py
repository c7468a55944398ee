"""The gateways' balancer spreads generations over every worker."""

from __future__ import annotations

import asyncio

from tests.fixtures.cluster import RunningCluster
from tests.integration.cluster.clients import http, new_session, new_user, wait_for_log
from tests.timing import seconds


async def test_rest_chats_spread_over_all_three_workers(
    cluster: RunningCluster, gateway_sources: dict[str, str]
) -> None:
    user = new_user()
    message_ids = []
    for source in list(gateway_sources.values()):
        async with http(cluster, source) as client:
            for _ in range(3):
                response = await client.post(
                    "/api/chat",
                    json={"message": "hello workers", "session_id": new_session()},
                    headers={"X-User-Id": user},
                )
                assert response.status_code == 202, response.text
                message_ids.append(response.json()["message_id"])

    finished_on: dict[str, str] = {}
    for message_id in message_ids:
        matches = await asyncio.to_thread(
            wait_for_log,
            cluster,
            rf"generation finished .*message_id={message_id}",
            ("worker",),
            seconds(20),
        )
        assert len(matches) == 1, (message_id, matches)
        finished_on[message_id] = next(iter(matches))
    workers = {node.node_id for node in cluster.of_role("worker")}
    assert set(finished_on.values()) == workers, finished_on

    # The gateways log the seed's line, naming the worker that took each call.
    logged = await asyncio.to_thread(
        wait_for_log, cluster, r"AI service request successful", ("gateway",), seconds(5)
    )
    urls = {line.rsplit("url=", 1)[1].split()[0] for lines in logged.values() for line in lines}
    assert urls == {node.url for node in cluster.of_role("worker")}
