"""``chatrelay cluster up --redis-shards 3``: a Redis Cluster of 3 masters and 3 replicas.

Every node is a child of the launcher, listed in ``cluster.json`` with its own
pid and address, shown by ``cluster status`` and stopped by ``cluster down``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from chatrelay.cluster.manifest import pid_alive
from chatrelay.harness.redis import redis_reply
from chatrelay.harness.redis_cluster import info_fields
from chatrelay.llm.simulated import choose_answer
from tests.fixtures.cluster import node_port, start_cluster
from tests.integration.cluster.clients import chatrelay, connect, new_session, new_user

SHARDS = 3


async def test_cluster_up_lists_every_redis_node_and_cluster_down_stops_them(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    cluster = start_cluster(
        run_dir, gateways=1, workers=1, redis_shards=SHARDS, options=("--database", "sqlite")
    )
    try:
        redis = cluster.of_role("redis")
        assert [node.node_id for node in redis] == [f"redis-{i}" for i in range(1, 7)]
        pids = [node.pid for node in redis]
        assert len(set(pids)) == 2 * SHARDS and all(pid_alive(pid) for pid in pids), pids
        assert not any(node.restartable for node in redis)
        ports = [node_port(node.url) for node in redis]
        assert len(set(ports)) == 2 * SHARDS
        states = [info_fields(port, "CLUSTER", "INFO") for port in ports]
        assert {state.get("cluster_state") for state in states} == {"ok"}, states
        assert {state.get("cluster_size") for state in states} == {str(SHARDS)}, states
        roles = Counter(info_fields(port, "INFO", "replication").get("role") for port in ports)
        assert roles == {"master": SHARDS, "slave": SHARDS}, roles
        launcher_log = cluster.launcher.log()
        assert "redis: a Redis Cluster of 3 masters and 3 replicas" in launcher_log
        assert "REDIS_URL=redis-cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports) in (
            launcher_log
        )

        # The nodes use it: an answer streams, and its keys are in the cluster.
        session, content = new_session(), "hello over three shards"
        client = await connect(cluster, "127.0.0.1", session_id=session, user_id=new_user())
        try:
            turn = await client.follow(await client.chat(content))
        finally:
            await client.close()
        assert turn.complete is not None
        assert (turn.complete["status"], turn.text) == ("completed", choose_answer(content))
        stored = [redis_reply(port, "DBSIZE") for port in ports]
        assert sum(int(reply.strip(b":\r\n")) for reply in stored) > 0, stored

        status = chatrelay("cluster", "status", "--run-dir", str(run_dir))
        assert status.returncode == 0, status.stdout + status.stderr
        *table, roles = status.stdout.splitlines()[2:]
        rows = [row.split() for row in table]
        assert [row[1] for row in rows if row[0] == "redis"] == [n.node_id for n in redis]
        assert {row[-1] for row in rows} == {"alive"}, status.stdout
        masters, replicas = "redis-1, redis-2, redis-3", "redis-4, redis-5, redis-6"
        assert roles == f"Redis Cluster now: masters {masters}; replicas {replicas}"

        down = chatrelay("cluster", "down", "--run-dir", str(run_dir))
        assert down.returncode == 0, down.stdout + down.stderr
        assert "stopped the cluster" in down.stdout
        assert not any(pid_alive(pid) for pid in pids)
        assert cluster.launcher.popen.wait() == 0
        after = chatrelay("cluster", "status", "--run-dir", str(run_dir))
        assert after.returncode == 1
        *table, roles = after.stdout.splitlines()[2:]
        assert [row.split()[-1] for row in table] == ["dead"] * len(rows)
        assert roles == "Redis Cluster now: dead " + ", ".join(n.node_id for n in redis)
    finally:
        cluster.stop()  # a no-op once down stopped it; kills strays otherwise
