"""The client core on Redis Cluster: redis-py's ``RedisCluster``, tagged keys, sharded pub/sub.

``redis-cluster://[user:password@]host:port[,host:port...]`` names the seed
nodes (any of the cluster's nodes: the client reads the slot map from the
first that answers). Keys carry hash tags (``KeySpace(tagged=True)``), so a
session's keys share one slot and every script touches one slot; scripts
check the writer of a session's meta (``_epoch.lua``) so a failover that lost
entries changes the epoch; live events travel by ``SPUBLISH`` within a shard
(``redis_sharded_pubsub.py``).

As on one Redis, commands are not retried (a publish whose reply was lost may
have appended): a command that meets a dead master fails with ``EngineError``,
and redis-py reads the slot map again before the next one.
"""

from __future__ import annotations

from urllib.parse import unquote

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from chatrelay.engine.keys import KeySpace
from chatrelay.engine.redis_client import (
    COMMAND_TIMEOUT,
    CONNECT_TIMEOUT,
    POOL_MAX_CONNECTIONS,
    RedisCore,
    connection_name,
)
from chatrelay.engine.redis_sharded_pubsub import ShardedPubSub

SCHEME = "redis-cluster://"


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], str | None, str | None]:
    """The seed nodes, user and password of a ``redis-cluster://`` URL.

    Raises ``ValueError`` for a URL without a ``host:port``.
    """
    rest = url.removeprefix(SCHEME).split("/", 1)[0].split("?", 1)[0]
    credentials, _, hosts = rest.rpartition("@")
    user, _, password = credentials.partition(":")
    seeds = []
    for address in filter(None, hosts.split(",")):
        host, colon, port = address.rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"a Redis Cluster node must be host:port, not {address!r}")
        seeds.append((host.strip("[]"), int(port)))
    if not seeds:
        raise ValueError(f"{url!r} names no Redis Cluster node (redis-cluster://host:port,...)")
    return seeds, unquote(user) or None, unquote(password) or None


class RedisClusterClient(RedisCore):
    """``RedisCore`` on a Redis Cluster (see the module's doc).

    ``max_connections`` bounds the connections to each node.
    """

    cluster = True

    def __init__(
        self, url: str, *, node_id: str = "", prefix: str = "", max_connections: int | None = None
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("a Redis key prefix must not contain { or } on Redis Cluster")
        seeds, user, password = parse_cluster_url(url)
        self.keys = KeySpace(prefix, tagged=True)
        self.client_name = connection_name(node_id)
        self._user, self._password = user, password
        #: The client for single commands; wrap each call in ``errors``.
        self.redis = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in seeds],
            max_connections=max_connections or POOL_MAX_CONNECTIONS,
            retry=Retry(NoBackoff(), 0),
            client_name=self.client_name,
            username=user,
            password=password,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_keepalive=True,
        )
        self._load_scripts()

    def new_connection(self, host: str, port: int, name_suffix: str) -> AbstractConnection:
        """An unconnected connection to one node, named ``client_name + name_suffix``."""
        return Connection(
            host=host,
            port=port,
            client_name=self.client_name + name_suffix,
            retry=Retry(NoBackoff(), 0),
            username=self._user,
            password=self._password,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_keepalive=True,
        )

    def live_router(self) -> ShardedPubSub:
        """The router of this process's live events: one sharded pub/sub connection per shard."""
        return ShardedPubSub(
            self.redis,
            lambda host, port: self.new_connection(host, port, ":pubsub"),
            self.connection_lost,
        )
