"""The engine on a real Redis Cluster: slots, sharded fan-out, and a master's failover.

The contract suite (tests/contract) runs unchanged on a cluster too; these are
what only a cluster has: where a session's events travel, and what a client
is told when the master serving its session dies.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from chatrelay.engine import create_engine
from chatrelay.engine.base import Engine, Event
from chatrelay.engine.redis_cluster_client import RedisClusterClient, parse_cluster_url
from chatrelay.engine.subscription import QueueSubscription
from chatrelay.exceptions import EngineError
from chatrelay.harness.redis import redis_reply
from chatrelay.harness.redis_cluster import ClusterNode, RedisCluster, start_redis_cluster
from tests.timing import seconds
from tests.unit.engine.conftest import frame

FORM_TIMEOUT = seconds(60)
# A replica notices a dead master after the node timeout (2 s) and wins an election.
FAILOVER_TIMEOUT = seconds(30)
EVENT_TIMEOUT = seconds(10)


async def master_of(cluster: RedisCluster, engine: Engine, session_id: str) -> ClusterNode:
    """The node serving ``session_id``'s slot now (by the engine's own slot map)."""
    assert isinstance(engine.client, RedisClusterClient)
    await engine.client.redis.initialize()
    slot = key_slot(engine.client.keys.session_log(session_id).encode())
    name = engine.client.redis.nodes_manager.get_node_from_slot(slot).name
    (node,) = [node for node in cluster.nodes if node.address == name]
    return node


async def next_event(subscription: QueueSubscription) -> Event:
    async def first() -> Event:
        async for event in subscription:
            return event
        raise AssertionError("the subscription ended")

    return await asyncio.wait_for(first(), EVENT_TIMEOUT)


async def publish_when_served(engine: Engine, session_id: str, n: int) -> int:
    """Publish, retrying while the session's slot has no live master (the failover)."""
    async with asyncio.timeout(FAILOVER_TIMEOUT):
        while True:
            try:
                return (await engine.broker.publish(session_id, frame(n))).event.offset
            except EngineError:
                await asyncio.sleep(0.2)


@pytest.fixture
async def cluster_engine(redis_cluster_url: str) -> AsyncIterator[Engine]:
    engine = create_engine(redis_cluster_url, max_events=50)
    try:
        yield engine
    finally:
        await engine.aclose()


def test_the_url_names_the_seed_nodes_and_credentials() -> None:
    assert parse_cluster_url("redis-cluster://a:1,b:2") == ([("a", 1), ("b", 2)], None, None)
    assert parse_cluster_url("redis-cluster://u:p%40ss@a:1/") == ([("a", 1)], "u", "p@ss")
    with pytest.raises(ValueError, match="host:port"):
        parse_cluster_url("redis-cluster://a")
    with pytest.raises(ValueError, match="names no"):
        parse_cluster_url("redis-cluster://")


async def test_a_session_s_events_are_published_within_its_shard(
    redis_cluster: RedisCluster, cluster_engine: Engine
) -> None:
    """SPUBLISH: only the master serving the session's slot counts the publish."""
    serving = await master_of(redis_cluster, cluster_engine, "s1")
    async with cluster_engine.broker.subscribe("s1") as subscription:
        await cluster_engine.broker.publish("s1", frame(1))
        assert (await next_event(subscription)).offset == 1
    for node in redis_cluster.running():
        stats = redis_reply(node.port, "INFO", "commandstats").decode()
        published = "cmdstat_spublish:calls=" in stats
        assert published == (node is serving), node.address
        assert "cmdstat_publish:" not in stats  # classic PUBLISH is broadcast to every node


async def test_a_killed_master_s_sessions_get_a_new_epoch_and_others_see_no_gap(
    tmp_path: Path,
) -> None:
    cluster = start_redis_cluster(tmp_path, masters=3, timeout=FORM_TIMEOUT)
    engine = create_engine(cluster.url, max_events=50)
    try:
        # Sessions until one is on another master than the first.
        victim = "victim"
        victim_master = await master_of(cluster, engine, victim)
        bystander = "bystander-0"
        while await master_of(cluster, engine, bystander) is victim_master:
            bystander += "0"
        for n in (1, 2, 3):
            await engine.broker.publish(victim, frame(n))
            await engine.broker.publish(bystander, frame(n))
        victim_epoch, _ = await engine.broker.position(victim)
        bystander_epoch, _ = await engine.broker.position(bystander)
        async with (
            engine.broker.subscribe(victim) as victim_live,
            engine.broker.subscribe(bystander) as bystander_live,
        ):
            victim_live.on_reconnect = (victim_reconnected := asyncio.Event()).set
            victim_master.process.signal(signal.SIGKILL)
            victim_master.process.popen.wait()

            # The other shard streams on through the failover, live and in order.
            for n in range(4, 14):
                published = await engine.broker.publish(bystander, frame(n))
                assert (await next_event(bystander_live)).offset == published.event.offset == n
                await asyncio.sleep(0.1)

            # The victim's slot is served again by the promoted replica; its subscription
            # moved there and says it may have missed events; the log's epoch changed
            # (the new master may lack acknowledged entries): clients get a reset.
            offset = await publish_when_served(engine, victim, 4)
            await asyncio.wait_for(victim_reconnected.wait(), FAILOVER_TIMEOUT)
            after = await publish_when_served(engine, victim, 5)
            assert (await next_event(victim_live)).offset in (offset, after)
            new_epoch, latest = await engine.broker.position(victim)
            assert new_epoch != victim_epoch
            assert (await engine.broker.history(victim, since=0)).events[-1].offset == latest

        assert await master_of(cluster, engine, victim) is not victim_master
        assert bystander_live.reconnects == 0
        history = await engine.broker.history(bystander)
        assert history.epoch == bystander_epoch
        assert [event.offset for event in history.events] == list(range(1, 14))
    finally:
        await engine.aclose()
        cluster.stop()
