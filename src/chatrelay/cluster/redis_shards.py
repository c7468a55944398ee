"""``chatrelay cluster up --redis-shards N``: a Redis Cluster instead of one redis-server.

N masters and N replicas (one each) from Debian's ``redis-server``, made by
the harness's :func:`~chatrelay.harness.redis_cluster.start_redis_cluster`
(``--cluster-enabled yes``, ``redis-cli --cluster create``), ready once every
node says ``cluster_state:ok``. Every node of the chat cluster gets
``REDIS_URL=redis-cluster://h:p,...`` (every Redis node a seed).

A cluster node that dies is never started again by the launcher, not even on
SIGUSR1: its replica takes its slots over (a failover, in about the node
timeout). A master started again keeps its cluster id and slots but nothing
of its data (nothing is persisted), so brought back before the failover
it would serve, and make its replica copy, an empty shard. With fewer than 3
masters nothing takes over: the failure vote needs a majority of masters.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from chatrelay.harness.redis_cluster import ClusterNode, RedisCluster, start_redis_cluster

#: Replicas per master: one, so a SIGKILLed master has a replica to take over.
REPLICAS = 1
#: A replica takes over once a majority of the masters agree its master failed.
FAILOVER_MIN_MASTERS = 3


def start_shards(
    run_dir: Path, shards: int, timeout: float, avoid: Collection[int]
) -> RedisCluster:
    """Start and join the cluster; its files and logs go to ``RUN_DIR/redis-cluster``.

    A node finding a ``nodes-PORT.conf`` of an earlier run would think itself
    part of that cluster and refuse to join this one: those files go first.
    """
    directory = run_dir / "redis-cluster"
    for stale in directory.glob("nodes-*.conf"):
        stale.unlink()
    return start_redis_cluster(directory, shards, REPLICAS, timeout, detached=True, avoid=avoid)


def shard_nodes(cluster: RedisCluster) -> list[tuple[str, ClusterNode]]:
    """``redis-1`` ... ``redis-2N`` in creation order: the masters first, then the replicas."""
    return [(f"redis-{index}", node) for index, node in enumerate(cluster.nodes, start=1)]


def describe(cluster: RedisCluster) -> str:
    """One line for the launcher's announcement."""
    masters, replicas = cluster.masters, len(cluster.nodes) - cluster.masters
    takeover = (
        "a dead master's replica takes over"
        if masters >= FAILOVER_MIN_MASTERS
        else f"with fewer than {FAILOVER_MIN_MASTERS} masters no replica can take over"
    )
    return (
        f"a Redis Cluster of {_count(masters, 'master')} and {_count(replicas, 'replica')}"
        f" (REDIS_URL={cluster.url}; a dead node is not restarted: {takeover})"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
