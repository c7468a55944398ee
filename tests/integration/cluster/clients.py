"""Clients that reach the cluster's nginx from chosen loopback source addresses.

nginx's ``ip_hash`` looks at the first three octets of an IPv4 client
address, so 127.0.1.1, 127.0.2.1, ... are different clients to it (the whole
127.0.0.0/8 is loopback on Linux).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from chatrelay.protocol.server_frames import ServerFrame
from chatrelay.wire_client import WireClient
from tests import wsclient
from tests.fixtures.cluster import RunningCluster
from tests.timing import seconds

# Source addresses tried when looking for one per gateway.
SOURCES = [f"127.0.{third}.1" for third in range(1, 25)]


def chatrelay(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m chatrelay ARGS`` (``cluster status``, ``cluster down``, ...), its output."""
    return subprocess.run(
        [sys.executable, "-m", "chatrelay", *args],
        capture_output=True,
        text=True,
        timeout=seconds(60),
        check=False,
        env=env,
        cwd=cwd,
    )


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def new_session() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


async def connect(cluster: RunningCluster, source: str, **query: str) -> WireClient:
    """A WebSocket through nginx from ``source``; ``welcome`` already read."""
    return await wsclient.connect(cluster.ws, local_addr=(source, 0), **query)


def http(cluster: RunningCluster, source: str) -> httpx.AsyncClient:
    """An HTTP client to nginx from ``source``."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(base_url=cluster.url, transport=transport, timeout=seconds(10))


def sources_by_gateway(cluster: RunningCluster) -> dict[str, str]:
    """The first source address that lands on each gateway (asks ``/api/health`` via nginx)."""
    found: dict[str, str] = {}
    for source in SOURCES:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, timeout=seconds(10)) as client:
            node = client.get(f"{cluster.url}/api/health").json()["node"]
        found.setdefault(node, source)
    return found


async def worker_requests(gateway_url: str) -> dict[str, int]:
    """How many requests a gateway's balancer sent to each worker URL so far (its /metrics)."""
    async with httpx.AsyncClient(timeout=seconds(10)) as client:
        text = (await client.get(f"{gateway_url}/metrics")).text
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "chatrelay_upstream_calls_total":
                node = sample.labels["node"]
                counts[node] = counts.get(node, 0) + int(sample.value)
    return counts


def changed(before: dict[str, int], after: dict[str, int]) -> list[str]:
    return [url for url, count in after.items() if count != before.get(url, 0)]


def wait_for_log(
    cluster: RunningCluster,
    pattern: str,
    roles: tuple[str, ...] = ("worker",),
    timeout: float | None = None,
) -> dict[str, list[str]]:
    """Wait until ``pattern`` matches a log line of some node; the matches per node id."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + (timeout or seconds(20))
    while True:
        matches = {
            node.node_id: [line for line in node.log_text().splitlines() if regex.search(line)]
            for node in cluster.nodes
            if node.role in roles
        }
        matches = {node_id: lines for node_id, lines in matches.items() if lines}
        if matches or time.monotonic() > deadline:
            return matches
        time.sleep(0.1)


def frames_of(client: WireClient, message_id: str, *types: str) -> list[ServerFrame]:
    return [f for f in client.frames if f.get("message_id") == message_id and f["type"] in types]
