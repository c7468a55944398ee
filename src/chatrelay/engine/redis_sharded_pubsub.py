"""Live events from Redis Cluster: one sharded pub/sub router per shard, channels moved with slots.

A session's channel lives in its session's slot (``keys.py`` tags it), and
``SPUBLISH`` delivers only within the shard that serves the slot. So each
process keeps one ``PubSubRouter`` (sharded) per master it has subscribers
on, and joins a channel on the router of the master that serves it now.

Slots move: a master dies and its replica takes over (failover), or an
operator reshards. A watcher refreshes the cluster's slot map when a router's
connection is down, and every ``TOPOLOGY_CHECK_INTERVAL`` anyway; each channel
whose slot is now served elsewhere is left on its old router and joined on
the new one, and its subscriptions are told they may have missed events
(``connection_lost`` then ``resubscribed``) so their owners fill the gap from
the log (where a failover lost entries, the log's epoch changed: a ``reset``).
A router left without channels on a node that no longer serves slots is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisClusterException, RedisError

from chatrelay.engine.redis_pubsub import PubSubRouter
from chatrelay.engine.subscription import QueueSubscription
from chatrelay.exceptions import EngineError

logger = logging.getLogger(__name__)

# A router is down: look for a new slot map this often (a failover takes a few seconds).
DOWN_CHECK_INTERVAL = 0.5
# Everything is up: still compare the slot map this often (resharding moves slots silently).
TOPOLOGY_CHECK_INTERVAL = 10.0


class ShardedPubSub:
    """Routes each session channel to the sharded pub/sub router of its slot's master.

    ``cluster`` is the engine's ``RedisCluster`` (its slot map); ``new_connection``
    makes an unconnected connection to ``(host, port)``; ``on_connection_lost`` is
    passed to each router.
    """

    def __init__(
        self,
        cluster: RedisCluster,
        new_connection: Callable[[str, int], AbstractConnection],
        on_connection_lost: Callable[[BaseException], Awaitable[None]],
    ) -> None:
        self._cluster = cluster
        self._new_connection = new_connection
        self._on_connection_lost = on_connection_lost
        self._routers: dict[str, PubSubRouter] = {}
        #: The node name ("host:port") each channel is joined on.
        self._homes: dict[bytes, str] = {}
        #: The subscriptions each channel has now (a move must not bring back one that left).
        self._members: dict[bytes, set[QueueSubscription]] = {}
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False
        #: Channels moved to another shard's router (failover, resharding).
        self.moves = 0
        self._dropped_by_closed = 0
        self._reconnects_by_closed = 0

    @property
    def dropped_live_events(self) -> int:
        return self._dropped_by_closed + sum(r.dropped_live_events for r in self._routers.values())

    @property
    def reconnects(self) -> int:
        return self._reconnects_by_closed + sum(r.reconnects for r in self._routers.values())

    async def _serving(self, name: bytes) -> str:
        """The name of the master that serves ``name``'s slot, by the client's slot map."""
        try:
            if not self._cluster.nodes_manager.slots_cache:
                await self._cluster.initialize()
            slot = self._cluster.keyslot(name)
            return str(self._cluster.nodes_manager.get_node_from_slot(slot).name)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise EngineError(f"Redis Cluster slot map unavailable: {exc}") from exc

    def _router(self, node: str) -> PubSubRouter:
        router = self._routers.get(node)
        if router is None:
            host, _, port = node.rpartition(":")
            router = PubSubRouter(
                lambda: self._new_connection(host, int(port)),
                self._on_connection_lost,
                sharded=True,
            )
            self._routers[node] = router
        return router

    async def join(self, name: bytes, subscription: QueueSubscription) -> None:
        """Subscribe on the router of the shard that serves ``name`` (see ``PubSubRouter.join``)."""
        if self._closed:
            raise EngineError("the engine is closed")
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="redis-cluster-topology")
        async with self._lock:
            node = self._homes.get(name) or await self._serving(name)
            self._homes[name] = node
            self._members.setdefault(name, set()).add(subscription)
            router = self._router(node)
        try:
            await router.join(name, subscription)
        except BaseException:
            await self.leave(name, subscription)
            raise

    async def leave(self, name: bytes, subscription: QueueSubscription) -> None:
        members = self._members.get(name)
        if members is not None:
            members.discard(subscription)
            if not members:
                del self._members[name]
        node = self._homes.get(name)
        if node is None:
            return
        await self._routers[node].leave(name, subscription)
        if name not in self._members and self._homes.get(name) == node:
            del self._homes[name]

    async def _watch(self) -> None:
        """Move channels whose slot changed hands; often while a router is down."""
        waited = 0.0
        while True:
            down = any(not r.connected for r in self._routers.values() if r.channels)
            if down or waited >= TOPOLOGY_CHECK_INTERVAL:
                waited = 0.0
                try:
                    await self._rehome()
                except (RedisError, RedisClusterException, OSError, EngineError) as exc:
                    logger.warning("Redis Cluster slot map refresh failed: %s", exc)
                except Exception:
                    logger.exception("Redis Cluster slot map refresh failed")
            await asyncio.sleep(DOWN_CHECK_INTERVAL)
            waited += DOWN_CHECK_INTERVAL

    async def _rehome(self) -> None:
        await self._cluster.nodes_manager.initialize()
        async with self._lock:
            moving = []
            for name, node in list(self._homes.items()):
                serving = await self._serving(name)
                if serving != node:
                    moving.append((name, node, serving))
                    self._homes[name] = serving
        for name, old_node, new_node in moving:
            await self._move(name, self._routers[old_node], self._router(new_node))
            logger.warning("session channel %s moved from %s to %s", name, old_node, new_node)
        masters = {node.name for node in self._cluster.get_primaries()}
        for node, router in list(self._routers.items()):
            if not router.channels and node not in masters:
                del self._routers[node]
                self._dropped_by_closed += router.dropped_live_events
                self._reconnects_by_closed += router.reconnects
                await router.aclose()

    async def _move(self, name: bytes, old: PubSubRouter, new: PubSubRouter) -> None:
        """Join ``name``'s subscriptions on ``new``, then leave ``old``; each is told it may
        have missed events. A join that fails puts the channel back on ``old`` (home and
        subscriptions), so the next check tries the move again."""
        subscriptions = old.subscribers(name)
        for subscription in subscriptions:
            subscription.connection_lost()  # events may be missed until the new join
        joined = []
        try:
            for subscription in subscriptions:
                await new.join(name, subscription)
                joined.append(subscription)
        except EngineError:
            for subscription in joined:
                await new.leave(name, subscription)
            async with self._lock:
                self._homes[name] = next(n for n, r in self._routers.items() if r is old)
            return
        for subscription in subscriptions:
            await old.leave(name, subscription)
            if subscription in self._members.get(name, ()):
                subscription.resubscribed()
            else:  # it left while it moved
                await new.leave(name, subscription)
        self.moves += 1

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        for router in self._routers.values():
            await router.aclose()
