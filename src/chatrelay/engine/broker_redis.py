"""The broker on Redis: session logs and live fan-out shared by every node.

It keeps the guarantees of ``base.Broker`` for every process connected to
the same Redis. ``publish`` appends, fans out, fences and reads the cancel
flag in one ``EVALSHA`` of ``publish.lua``; live events reach a process
through one pub/sub connection (``redis_pubsub.py``), subscribed only to the
sessions it has subscribers for. ``docs/engine.md`` describes the key layout
and the trade-offs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson

from chatrelay.engine.base import Event, History, Lease, Published
from chatrelay.engine.events import encode_event
from chatrelay.engine.redis_client import RedisCore, milliseconds
from chatrelay.engine.subscription import SUBSCRIBER_QUEUE_SIZE, QueueSubscription
from chatrelay.exceptions import EngineError, LeaseLost

# Clients keep offsets across reconnects and sleeping tabs; a counter that
# went back to 0 would make them skip events, so it outlives the log by far.
OFFSET_TTL = 7 * 24 * 3600.0
# What publish.lua returns as the offset when the caller's lease is no longer current.
LEASE_LOST = 0


def _new_epoch() -> str:
    return os.urandom(8).hex()


class RedisBroker:
    """``Broker`` of ``engine/base.py`` on the Redis of ``client``.

    ``subscriber_queue_size`` (default ``SUBSCRIBER_QUEUE_SIZE``) bounds each
    subscriber's queue of live events.
    """

    def __init__(
        self,
        client: RedisCore,
        *,
        max_events: int = 1000,
        log_ttl: float = 300.0,
        subscriber_queue_size: int | None = None,
    ) -> None:
        self._client = client
        self._keys = client.keys
        self._max_events = max_events
        self._log_ttl_ms = milliseconds(log_ttl)
        self._offset_ttl_ms = milliseconds(max(OFFSET_TTL, 2 * log_ttl))
        self._queue_size = subscriber_queue_size or SUBSCRIBER_QUEUE_SIZE
        self._pubsub = client.live_router()
        # Redis Cluster: scripts check the meta's writer, and fan-out is sharded.
        self._check_writer = "1" if client.cluster else "0"
        self._fan_out = "SPUBLISH" if client.cluster else "PUBLISH"
        self._closed = False

    async def publish(
        self,
        session_id: str,
        frame: Mapping[str, Any],
        *,
        lease: Lease | None = None,
        cancel_of: str | None = None,
    ) -> Published:
        """Append and fan out in one round trip (``publish.lua``); see ``Broker.publish``."""
        body = orjson.dumps(frame)
        keys = [
            self._keys.session_meta(session_id),
            self._keys.session_log(session_id),
            self._keys.session_channel(session_id),
        ]
        lease_value = ""
        if lease is not None:
            keys.append(self._keys.lease(lease.key))
            lease_value = f"{lease.token}:{lease.holder}"
        if cancel_of is not None:
            keys.append(self._keys.cancel(session_id, cancel_of))
        args = [
            body,
            _new_epoch(),
            self._max_events,
            self._log_ttl_ms,
            self._offset_ttl_ms,
            lease_value,
            self._check_writer,
            self._fan_out,
        ]
        offset, cancelled = await self._client.run("publish", keys, args)
        if offset == LEASE_LOST:
            raise LeaseLost(f"lease {lease.key if lease else ''} is no longer held")
        return Published(Event(offset, encode_event(offset, body)), bool(cancelled))

    @asynccontextmanager
    async def subscribe(self, session_id: str) -> AsyncIterator[QueueSubscription]:
        """Live events of one session (see ``Broker.subscribe``).

        Raises ``EngineError`` if Redis does not confirm the subscription in
        time. Safe to cancel: a cancelled ``__aenter__`` leaves nothing behind.
        """
        if self._closed:
            raise EngineError("the engine is closed")
        name = self._keys.session_channel(session_id).encode()
        subscription = QueueSubscription(self._queue_size)
        await self._pubsub.join(name, subscription)
        try:
            yield subscription
        finally:
            await self._pubsub.leave(name, subscription)

    async def position(self, session_id: str) -> tuple[str, int]:
        epoch, latest = await self._client.run(
            "position",
            [self._keys.session_meta(session_id), self._keys.session_log(session_id)],
            [_new_epoch(), self._offset_ttl_ms, self._check_writer],
        )
        return epoch.decode(), int(latest)

    async def history(self, session_id: str, since: int = 0) -> History:
        reply = await self._client.run(
            "history",
            [self._keys.session_meta(session_id), self._keys.session_log(session_id)],
            [_new_epoch(), self._offset_ttl_ms, self._check_writer, since, self._log_ttl_ms],
        )
        latest = int(reply[1])
        events = [Event(int(reply[i]), reply[i + 1]) for i in range(2, len(reply), 2)]
        first_kept = events[0].offset if events else latest + 1
        return History(reply[0].decode(), latest, events, complete=first_kept <= since + 1)

    async def delete(self, session_id: str) -> None:
        """Remove the session's stream and its ``chat:meta`` (see ``Broker.delete``)."""
        keys = [self._keys.session_log(session_id), self._keys.session_meta(session_id)]
        async with self._client.errors("delete a session log"):
            await self._client.redis.delete(*keys)

    @property
    def dropped_live_events(self) -> int:
        """Live events dropped because a subscriber's queue was full (all subscribers)."""
        return self._pubsub.dropped_live_events

    @property
    def pubsub_reconnects(self) -> int:
        """Times the pub/sub connection was re-established after being lost."""
        return self._pubsub.reconnects

    async def aclose(self) -> None:
        """Stop the pub/sub reader and end every subscription's iteration."""
        if self._closed:
            return
        self._closed = True
        await self._pubsub.aclose()
