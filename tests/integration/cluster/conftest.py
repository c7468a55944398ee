"""The multi-node tests share one ``chatrelay cluster up`` (3 gateways, 3 workers)."""

from __future__ import annotations

import pytest

from tests.fixtures.cluster import RunningCluster, cluster
from tests.integration.cluster.clients import sources_by_gateway

__all__ = ["cluster"]


@pytest.fixture(scope="session")
def gateway_sources(cluster: RunningCluster) -> dict[str, str]:
    """One loopback source address per gateway that nginx's ip_hash sends there."""
    return sources_by_gateway(cluster)
