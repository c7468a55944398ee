"""The multi-node tests share one ``chatrelay cluster up`` (3 gateways, 3 workers).

Those that take ``each_cluster`` run twice: on that cluster (one Redis) and on
``sharded_cluster``, 2 gateways and 2 workers on a Redis Cluster of 3 masters
and 3 replicas (``cluster up --redis-shards 3``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.cluster import RunningCluster, cluster, running_cluster
from tests.integration.cluster.clients import sources_by_gateway

__all__ = ["cluster"]

#: Masters of the sharded cluster (each with a replica): the issue's "3-master Redis Cluster".
SHARDS = 3


@pytest.fixture(scope="session")
def gateway_sources(cluster: RunningCluster) -> dict[str, str]:
    """One loopback source address per gateway that nginx's ip_hash sends there."""
    return sources_by_gateway(cluster)


@pytest.fixture(scope="session")
def sharded_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    """2 gateways and 2 workers on a Redis Cluster of 3 masters and 3 replicas."""
    run_dir = tmp_path_factory.mktemp("sharded") / "run"
    with running_cluster(run_dir, gateways=2, workers=2, redis_shards=SHARDS) as running:
        yield running


@pytest.fixture(
    scope="session", params=["cluster", "sharded_cluster"], ids=["redis", "redis-cluster"]
)
def each_cluster(request: pytest.FixtureRequest) -> RunningCluster:
    """The shared cluster, then the sharded one (a test taking it runs on both)."""
    running: RunningCluster = request.getfixturevalue(request.param)
    return running


@pytest.fixture(scope="session")
def each_gateway_sources(each_cluster: RunningCluster) -> dict[str, str]:
    """``gateway_sources`` of ``each_cluster``."""
    return sources_by_gateway(each_cluster)
