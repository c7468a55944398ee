"""Workers die: the balancer goes around them, and says ``unavailable`` when none is left.

These tests kill processes, so they run on a cluster of their own (one
gateway, three workers), not on the shared one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatrelay.cluster.manifest import pid_alive
from chatrelay.llm.simulated import choose_answer
from tests.fixtures.cluster import RunningCluster, running_cluster
from tests.integration.cluster.clients import connect, new_session, new_user
from tests.timing import seconds

SOURCE = "127.0.0.1"


@pytest.fixture(scope="module")
def small_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    run_dir: Path = tmp_path_factory.mktemp("small-cluster") / "run"
    with running_cluster(run_dir, gateways=1, workers=3, chunk_delay=0.02) as running:
        yield running


async def _chat_once(cluster: RunningCluster, user: str, content: str) -> dict[str, object]:
    client = await connect(cluster, SOURCE, session_id=new_session(), user_id=user)
    try:
        turn = await client.follow(await client.chat(content), timeout=seconds(20))
    finally:
        await client.close()
    assert turn.complete is not None
    return {"status": turn.complete["status"], "text": turn.text}


async def test_with_one_worker_killed_every_new_chat_succeeds(
    small_cluster: RunningCluster,
) -> None:
    small_cluster.kill("worker-2")
    user = new_user()
    contents = [f"hello number {i}" for i in range(6)]
    results = await asyncio.gather(*(_chat_once(small_cluster, user, c) for c in contents))
    assert results == [{"status": "completed", "text": choose_answer(c)} for c in contents]
    # The gateway saw the dead worker fail and went on to the next one.
    gateway = small_cluster.of_role("gateway")[0]
    assert "AI service request failed" in gateway.log_text()


async def test_with_every_worker_down_a_chat_gets_unavailable_and_the_socket_lives_on(
    small_cluster: RunningCluster,
) -> None:
    for worker in small_cluster.of_role("worker"):
        if pid_alive(worker.pid):  # worker-2 died in the test before
            small_cluster.kill(worker.node_id)
    client = await connect(small_cluster, SOURCE, session_id=new_session(), user_id=new_user())
    await client.send({"type": "chat", "content": "is anyone there", "client_id": "c-1"})
    error = await client.recv_type("error", timeout=seconds(20))
    assert (error["code"], error["client_id"]) == ("unavailable", "c-1"), error
    assert error["detail"]
    await client.send({"type": "ping"})
    assert (await client.recv_type("pong"))["type"] == "pong"
    # The socket still takes chats (and still refuses them the same way).
    await client.send({"type": "chat", "content": "still nobody?", "client_id": "c-2"})
    again = await client.recv_type("error", timeout=seconds(20))
    assert (again["code"], again["client_id"]) == ("unavailable", "c-2"), again
    await client.close()
