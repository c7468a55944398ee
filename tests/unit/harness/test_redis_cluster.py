"""The Redis Cluster harness: a real cluster forms, routes by slot, fails over, and stops by pid."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode as PyClusterNode
from redis.cluster import RedisCluster as PyRedisCluster

from chatrelay.harness.redis_cluster import RedisCluster, start_redis_cluster
from tests.timing import seconds

# A replica notices a dead master after the node timeout (2 s) and wins an election.
FAILOVER_TIMEOUT = seconds(30)
FORM_TIMEOUT = seconds(60)


def _client(cluster: RedisCluster) -> PyRedisCluster:
    seeds = [PyClusterNode("127.0.0.1", node.port) for node in cluster.running()]
    return PyRedisCluster(startup_nodes=seeds, decode_responses=True)


def test_three_masters_with_a_replica_each_serve_every_slot(redis_cluster: RedisCluster) -> None:
    assert redis_cluster.healthy()
    roles = sorted(node.role() for node in redis_cluster.nodes)
    assert roles == ["master"] * 3 + ["slave"] * 3
    assert redis_cluster.url == "redis-cluster://" + ",".join(
        f"127.0.0.1:{node.port}" for node in redis_cluster.nodes
    )

    client = _client(redis_cluster)
    try:
        # Keys of one hash tag share a slot, so one command may touch them all...
        client.mset_nonatomic({"{s1}:log": "a", "{s1}:meta": "b"})
        assert client.mget_nonatomic(["{s1}:log", "{s1}:meta"]) == ["a", "b"]
        assert client.keyslot("{s1}:log") == client.keyslot("{s1}:meta")
        # ...and a multi-key command across slots is refused by Redis itself.
        owner = client.get_node_from_key("{s1}:log")
        direct = redis.Redis(host="127.0.0.1", port=owner.port, decode_responses=True)
        try:
            with pytest.raises(redis.ResponseError, match="same slot"):
                direct.execute_command("MGET", "{s1}:log", "{s2}:log")
        finally:
            direct.close()
    finally:
        client.close()


@pytest.mark.external  # starts its own cluster: the failover leaves it changed
def test_a_killed_master_is_replaced_by_its_replica_and_keeps_acknowledged_keys(
    tmp_path: Path,
) -> None:
    cluster = start_redis_cluster(tmp_path, masters=3, timeout=FORM_TIMEOUT)
    try:
        client = _client(cluster)
        try:
            client.set("{victim}:key", "kept")
            owner = client.get_node_from_key("{victim}:key")
            # WAIT: the write reached the replica before the master dies.
            assert client.execute_command("WAIT", 1, 5000, target_nodes=owner) == 1
        finally:
            client.close()
        (master,) = [node for node in cluster.nodes if node.port == owner.port]
        master.process.signal(signal.SIGKILL)
        master.process.popen.wait()

        cluster.wait_healthy(FAILOVER_TIMEOUT)
        assert sorted(node.role() for node in cluster.running()) == ["master"] * 3 + ["slave"] * 2
        client = _client(cluster)
        try:
            assert client.get("{victim}:key") == "kept"
        finally:
            client.close()
    finally:
        cluster.stop()
    assert all(node.process.exit_code() is not None for node in cluster.nodes)


@pytest.mark.external  # starts its own cluster
@pytest.mark.parametrize("masters", [1, 2])
def test_fewer_than_three_masters_are_joined_by_hand_and_serve_every_slot(
    tmp_path: Path, masters: int
) -> None:
    # redis-cli --cluster create refuses fewer than 3 masters.
    cluster = start_redis_cluster(tmp_path, masters=masters, timeout=FORM_TIMEOUT)
    try:
        assert cluster.healthy()
        roles = [node.role() for node in cluster.nodes]
        assert roles == ["master"] * masters + ["slave"] * masters
        client = _client(cluster)
        try:
            for key in ("{a}:k", "{b}:k", "{c}:k", "{d}:k"):
                client.set(key, key)
            assert [client.get(k) for k in ("{a}:k", "{d}:k")] == ["{a}:k", "{d}:k"]
        finally:
            client.close()
    finally:
        cluster.stop()
    assert all(node.process.exit_code() is not None for node in cluster.nodes)
