"""Shared state and messaging: the engine's facets and the factory that composes them."""

from __future__ import annotations

from chatrelay.engine.base import Engine

# The session log keeps this many events, for this many seconds (both bound memory).
DEFAULT_MAX_EVENTS = 1000
DEFAULT_LOG_TTL = 300.0


def create_engine(
    url: str,
    *,
    max_events: int = DEFAULT_MAX_EVENTS,
    log_ttl: float = DEFAULT_LOG_TTL,
    node_id: str = "",
    prefix: str = "",
    subscriber_queue_size: int | None = None,
    max_connections: int | None = None,
) -> Engine:
    """The engine named by ``url``: ``memory://``, ``redis://host:port/db`` or
    ``redis-cluster://host:port[,host:port...]`` (Redis Cluster).

    The rest tunes Redis only: ``node_id`` names this process's connections,
    ``prefix`` goes in front of every key, and ``subscriber_queue_size`` and
    ``max_connections`` (None: the modules' defaults) bound the pub/sub
    queues and the pool. Redis is imported only when asked for.
    """
    if url.startswith("memory:"):
        from chatrelay.engine.broker_memory import MemoryBroker
        from chatrelay.engine.coordination_memory import MemoryCoordination
        from chatrelay.engine.registry_memory import MemoryRegistry

        coordination, registry = MemoryCoordination(), MemoryRegistry()
        # The broker's sweep forgets what the other two let expire (broker_memory.py).
        broker = MemoryBroker(coordination, max_events, log_ttl, swept=(coordination, registry))
        return Engine(broker, registry, coordination)
    if url.startswith(("redis:", "rediss:", "unix:", "redis-cluster:")):
        from chatrelay.engine.broker_redis import RedisBroker
        from chatrelay.engine.coordination_redis import RedisCoordination
        from chatrelay.engine.nodes_redis import RedisNodes
        from chatrelay.engine.redis_client import RedisClient, RedisCore
        from chatrelay.engine.registry_redis import RedisRegistry

        client: RedisCore
        redis_registry: RedisRegistry
        if url.startswith("redis-cluster:"):
            from chatrelay.engine.redis_cluster_client import RedisClusterClient
            from chatrelay.engine.registry_redis_cluster import RedisClusterRegistry

            client = RedisClusterClient(
                url, node_id=node_id, prefix=prefix, max_connections=max_connections
            )
            redis_registry = RedisClusterRegistry(client)
        else:
            client = RedisClient(
                url, node_id=node_id, prefix=prefix, max_connections=max_connections
            )
            redis_registry = RedisRegistry(client)
        redis_broker = RedisBroker(
            client,
            max_events=max_events,
            log_ttl=log_ttl,
            subscriber_queue_size=subscriber_queue_size,
        )
        return Engine(
            redis_broker,
            redis_registry,
            RedisCoordination(client),
            client,
            RedisNodes(client),
        )
    raise ValueError(
        f"unknown engine URL {url!r} (expected memory://, redis://... or redis-cluster://...)"
    )
