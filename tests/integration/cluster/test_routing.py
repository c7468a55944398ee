"""nginx in front of three gateways: clients spread over them, each one sticky."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.fixtures.cluster import RunningCluster
from tests.integration.cluster.clients import SOURCES, connect, new_session, new_user
from tests.timing import seconds


async def test_clients_from_different_addresses_land_on_more_than_one_gateway(
    cluster: RunningCluster,
) -> None:
    user = new_user()
    landed: dict[str, str] = {}
    for source in SOURCES[:8]:
        client = await connect(cluster, source, session_id=new_session(), user_id=user)
        landed[source] = client.welcome["node"]
        await client.close()
    gateways = {node.node_id for node in cluster.of_role("gateway")}
    assert set(landed.values()) <= gateways
    assert len(set(landed.values())) > 1, landed
    # Three gateways, eight client networks: nobody gets them all.
    assert max(Counter(landed.values()).values()) < len(landed), landed


async def test_the_same_address_lands_on_the_same_gateway_every_time(
    cluster: RunningCluster,
) -> None:
    user = new_user()
    for source in SOURCES[:3]:
        seen = set()
        for _ in range(4):
            client = await connect(cluster, source, session_id=new_session(), user_id=user)
            seen.add(client.welcome["node"])
            await client.close()
        assert len(seen) == 1, (source, seen)


async def test_the_access_log_names_the_gateway_of_each_socket(
    cluster: RunningCluster, gateway_sources: dict[str, str]
) -> None:
    user = new_user()
    sessions = {}
    for node_id, source in gateway_sources.items():
        session = new_session()
        client = await connect(cluster, source, session_id=session, user_id=user)
        assert client.welcome["node"] == node_id
        await client.close()  # nginx writes the line when the socket ends
        sessions[session] = cluster.node(node_id).url.removeprefix("http://")
    log = cluster.run_dir / "nginx-access.log"
    for session, upstream in sessions.items():
        lines = [line for line in _wait_lines(log, session) if "/ws/chat" in line]
        assert lines, f"no access-log line for {session}"
        assert re.search(rf"upstream={re.escape(upstream)}\b", lines[-1]), lines[-1]
        assert " 101 " in lines[-1]


def _wait_lines(path: Path, needle: str) -> list[str]:
    deadline = time.monotonic() + seconds(5)
    while True:
        lines = [line for line in path.read_text().splitlines() if needle in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_cluster_status_shows_every_process_alive(cluster: RunningCluster) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatrelay", "cluster", "status", "--run-dir", str(cluster.run_dir)],
        capture_output=True,
        text=True,
        timeout=seconds(30),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = result.stdout.splitlines()[2:]
    assert sorted(row.split()[1] for row in rows) == sorted(n.node_id for n in cluster.nodes)
    assert all(row.split()[-1] == "alive" for row in rows), result.stdout
    roles = Counter(row.split()[0] for row in rows)
    assert roles == {"redis": 1, "postgres": 1, "nginx": 1, "gateway": 3, "worker": 3}
