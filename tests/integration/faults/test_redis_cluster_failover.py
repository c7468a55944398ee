"""A Redis Cluster master SIGKILLed mid-stream: its replica takes over (issue 15).

20 sessions stream long answers on ``cluster up --redis-shards 3`` (3 masters,
3 replicas, the fault cluster's 2 gateways and 2 workers), spread over the
three shards by their session ids' hash slots. One master is SIGKILLed by the
pid ``cluster.json`` lists. Redis replication is asynchronous, so the shard's
replica may lack the last acknowledged writes: a session on that shard may
see its log go on (no gap, no repeat) or an honest ``reset``, after which
the store holds the answer it shows. Never a silent gap. Every answer ends
with a final status; sessions on the other two shards see no gap and no
reset at all; a new chat on the killed master's slots works again once the
replica has taken over. The killed node stays dead (the launcher never
restarts a cluster node).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from redis.cluster import ClusterNode as PyClusterNode
from redis.cluster import RedisCluster as PyRedisCluster

from chatrelay.engine.keys import KeySpace
from chatrelay.harness.readiness import wait_ready
from chatrelay.harness.redis_cluster import info_fields
from chatrelay.llm.simulated import numbered_answer
from chatrelay.wire_client import log_offset
from tests.fixtures.cluster import Node, RunningCluster, node_port, running_cluster
from tests.integration.cluster.clients import chatrelay, sources_by_gateway
from tests.integration.faults.conftest import FAULT_CLUSTER
from tests.integration.faults.observed import (
    FINAL,
    ChatRefused,
    Observed,
    check_invariants,
    new_session,
    new_user,
    offset_problems,
)
from tests.timing import seconds, wait_until

SHARDS = 3
SESSIONS = 20
# "#words=300": 300 chunks, ~9 s at the fault cluster's 30 ms a word.
WORDS = 300
KILL_AFTER_CHUNKS = 10
# The node timeout (2 s), the replica's election, and a few seconds for the nodes.
BACK_WITHIN_SECONDS = 15.0
FAILOVER_TIMEOUT = seconds(30)
# The session log's key names, as the cluster engine builds them.
KEYS = KeySpace(tagged=True)


@pytest.fixture(scope="module")
def sharded_fault_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    """The fault cluster on a Redis Cluster of 3 masters (its own: the test breaks it)."""
    run_dir = tmp_path_factory.mktemp("redis-cluster-failover") / "run"
    with running_cluster(run_dir, redis_shards=SHARDS, **FAULT_CLUSTER) as running:
        yield running


def _owners(redis: list[Node], sessions: list[str]) -> dict[str, int]:
    """The port of the master serving each session's log key now."""
    seeds = [PyClusterNode("127.0.0.1", node_port(node.url)) for node in redis]
    client = PyRedisCluster(startup_nodes=seeds)
    try:
        return {s: int(client.get_node_from_key(KEYS.session_log(s)).port) for s in sessions}
    finally:
        client.close()


def _spread_sessions(redis: list[Node]) -> tuple[list[str], dict[str, int]]:
    """``SESSIONS`` session ids spread evenly over the masters, one more (the last) for a
    new chat after the failover, and the port of each one's master: the spare's is the
    master to kill."""
    per_master = -(-SESSIONS // SHARDS)
    chosen: dict[str, int] = {}
    spare: tuple[str, int] | None = None
    while len(chosen) < SESSIONS or spare is None:
        owners = _owners(redis, [new_session() for _ in range(SESSIONS)])
        counts = Counter(chosen.values())
        for session, port in owners.items():
            if len(chosen) < SESSIONS and counts[port] < per_master:
                chosen[session] = port
                counts[port] += 1
            elif spare is None and len(chosen) == SESSIONS:
                spare = (session, port)
    return [*chosen, spare[0]], {**chosen, spare[0]: spare[1]}


def _cluster_recovered(survivors: list[int]) -> bool:
    """Every surviving node: ``cluster_state:ok``, every slot served, 3 masters among them."""
    states = [info_fields(port, "CLUSTER", "INFO") for port in survivors]
    roles = [info_fields(port, "INFO", "replication").get("role") for port in survivors]
    return roles.count("master") == SHARDS and all(
        state.get("cluster_state") == "ok" and state.get("cluster_slots_ok") == "16384"
        for state in states
    )


async def _stored(observed: Observed) -> dict[str, dict[str, Any]]:
    return {message["id"]: dict(message) for message in await observed.history()}


def _frames_of(observed: Observed, message_id: str) -> list[str]:
    """A short trace of what a client was handed for one answer (for failure messages)."""
    trace = []
    for frame in observed.frames:
        if frame["type"] == "reset":
            trace.append(f"reset(epoch {frame['epoch']}, offset {frame['offset']})")
        elif frame.get("message_id") == message_id or frame["type"] == "message":
            trace.append(f"{frame['type']}@{log_offset(frame)}")
    return [*trace[:3], "...", *trace[-6:]] if len(trace) > 10 else trace


async def test_a_killed_master_fails_over_without_a_silent_gap(
    sharded_fault_cluster: RunningCluster,
) -> None:
    cluster = sharded_fault_cluster
    redis = cluster.of_role("redis")
    sessions, owner = _spread_sessions(redis)
    fresh = sessions.pop()  # on the victim's slots; chats only after the failover
    victim_port = owner[fresh]
    (victim,) = [node for node in redis if node_port(node.url) == victim_port]
    sources = list(sources_by_gateway(cluster).values())
    clients = [
        await Observed.open(cluster.ws, session, new_user(), sources[i % len(sources)])
        for i, session in enumerate(sessions)
    ]
    newcomer: Observed | None = None
    try:
        ids = [await c.chat(f"#words={WORDS} failover ({i})") for i, c in enumerate(clients)]
        await asyncio.gather(
            *(c.wait_chunks(m, KILL_AFTER_CHUNKS) for c, m in zip(clients, ids, strict=True))
        )

        cluster.kill(victim.node_id)  # SIGKILL by the pid of cluster.json
        killed_at = time.monotonic()
        survivors = [node_port(node.url) for node in redis if node is not victim]
        await asyncio.to_thread(
            wait_ready,
            lambda: _cluster_recovered(survivors),
            [],
            "a replica taking over the killed master",
            FAILOVER_TIMEOUT,
        )
        failover_seconds = time.monotonic() - killed_at

        # A new chat on the killed master's slots works again (retrying what is refused).
        newcomer = await Observed.open(cluster.ws, fresh, new_user(), sources[0])
        while True:
            try:
                fresh_answer = await newcomer.chat(f"#words=5 after the failover {fresh}")
                break
            except ChatRefused as refused:
                assert refused.code == "unavailable", refused
                waited = time.monotonic() - killed_at
                assert waited < seconds(BACK_WITHIN_SECONDS), refused
                await asyncio.sleep(0.2)  # a user's retry pause
        accepted_after = time.monotonic() - killed_at
        done = await newcomer.wait_complete(fresh_answer, seconds(30))
        assert (done["status"], done["content"]) == ("completed", numbered_answer(5))

        # Every answer ends with a final status in the store.
        stored: dict[str, dict[str, Any]] = {}

        async def all_final() -> bool:
            for client, message_id in zip(clients, ids, strict=True):
                if stored.get(message_id, {}).get("status") not in FINAL:
                    stored.update(await _stored(client))
            return all(stored.get(m, {}).get("status") in FINAL for m in ids)

        await wait_until(all_final, "every answer final in the store", seconds(60))

        problems: list[str] = []
        outcome: Counter[str] = Counter()
        for client, message_id in zip(clients, ids, strict=True):
            session = client.client.session_id
            on_victim = owner[session] == victim_port
            resets = [f for f in client.frames if f["type"] == "reset"]
            turn, message = client.turn(message_id), stored[message_id]
            where = f"{session} ({'killed shard' if on_victim else 'other shard'})"
            trace = _frames_of(client, message_id)
            if offset_problems(client):
                problems.append(f"{where}: {offset_problems(client)[:3]}; {trace}")
            if not on_victim and resets:
                problems.append(f"{where}: reset on an untouched shard; {trace}")
            if not resets:
                # No reset: every offset arrived, so the whole answer did.
                if turn.complete is None or turn.complete["content"] != message["content"]:
                    problems.append(f"{where}: no reset, yet not the whole answer; {trace}")
            elif not message["content"].startswith(_text_before(client, message_id)):
                problems.append(f"{where}: shown before the reset is not the stored start")
            if (
                not on_victim
                and (turn.complete["status"] if turn.complete else None) != "completed"
            ):
                problems.append(f"{where}: {message['status']} on an untouched shard; {trace}")
            outcome[f"{'victim' if on_victim else 'other'} {message['status']}"] += 1
            outcome[f"{'victim' if on_victim else 'other'} resets"] += bool(resets)
        assert not problems, "\n".join(problems)
        for client in [*clients, newcomer]:
            await check_invariants(client)

        await wait_until(
            lambda: f"pid {victim.pid}) exited unexpectedly" in cluster.launcher.log(),
            "the launcher noticing the killed node",
            seconds(10),
        )
        assert "not restarted, ever" in cluster.launcher.log()
        status = chatrelay("cluster", "status", "--run-dir", str(cluster.run_dir))
        assert status.returncode == 1, status.stdout  # one process is dead
        roles = status.stdout.splitlines()[-1].removeprefix("Redis Cluster now: ").split("; ")
        nodes_by_role = dict(part.split(" ", 1) for part in roles)
        assert len(nodes_by_role["masters"].split(", ")) == SHARDS, roles
        assert nodes_by_role["dead"] == victim.node_id, roles
        print(
            f"\nRedis Cluster failover: master {victim.node_id} killed; replica in charge after "
            f"{failover_seconds:.2f}s; a new chat on its slots accepted after "
            f"{accepted_after:.2f}s; answers {dict(outcome)}"
        )
    finally:
        others = [newcomer] if newcomer is not None else []
        await asyncio.gather(*(client.close() for client in [*clients, *others]))


def _text_before(observed: Observed, message_id: str) -> str:
    """The answer's text a client was shown before its first ``reset``."""
    text = []
    for frame in observed.frames:
        if frame["type"] == "reset":
            break
        if frame["type"] == "chunk" and frame["message_id"] == message_id:
            text.append(frame["delta"])
    return "".join(text)
