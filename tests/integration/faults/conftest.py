"""Fault tests share one small cluster (2 gateways, 2 workers behind nginx) that they break.

Leases live 3 s (so a killed worker's answer ends within seconds), the
simulated model writes a word every 30 ms (a long answer lasts ~7 s, long
enough to kill something in the middle of it). After every test, whatever the
test killed is started again (on its old port) before the next one begins.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.cluster import RunningCluster, running_cluster
from tests.integration.cluster.clients import sources_by_gateway
from tests.timing import seconds

LEASE_TTL = 3.0
CHUNK_DELAY = 0.03
#: How a fault cluster runs (``start_cluster``'s options; also the Redis Cluster's).
FAULT_CLUSTER: dict[str, Any] = {
    "gateways": 2,
    "workers": 2,
    "chunk_delay": CHUNK_DELAY,
    "grace": 8,
    "extra_env": {
        "CHATRELAY_LEASE_TTL": str(LEASE_TTL),
        "CHATRELAY_DRAIN_GRACE_SECONDS": "5",
        "CHATRELAY_CHAT_RATE_BURST": "100",
    },
}


@pytest.fixture(scope="session")
def fault_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    run_dir = tmp_path_factory.mktemp("faults") / "run"
    with running_cluster(run_dir, **FAULT_CLUSTER) as running:
        yield running


@pytest.fixture
def cluster(
    fault_cluster: RunningCluster, gateway_sources: dict[str, str]
) -> Iterator[RunningCluster]:
    """The fault cluster, with every process it lost restarted after the test.

    nginx skips a gateway for 5 s after it failed (``fail_timeout``); the
    next test starts only once each restarted gateway is routed to again.
    """
    yield fault_cluster
    for node_id in fault_cluster.restart_dead():
        if node_id in gateway_sources:
            _wait_routed(fault_cluster, node_id, gateway_sources[node_id])


def _wait_routed(cluster: RunningCluster, node_id: str, source: str) -> None:
    deadline = time.monotonic() + seconds(20)
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=seconds(5)) as client:
        while client.get(f"{cluster.url}/api/health").json().get("node") != node_id:
            assert time.monotonic() < deadline, f"nginx does not route to {node_id} again"
            time.sleep(0.2)


@pytest.fixture(scope="session")
def gateway_sources(fault_cluster: RunningCluster) -> dict[str, str]:
    """One loopback source address per gateway that nginx's ip_hash sends there."""
    return sources_by_gateway(fault_cluster)
