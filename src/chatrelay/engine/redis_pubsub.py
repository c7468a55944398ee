"""Live events from Redis: one pub/sub connection per process, shared by every subscriber.

The router subscribes a session's channel when its first local subscriber
arrives and unsubscribes when the last one leaves; one reader task routes
each message to the bounded queues of that channel's subscribers. When the
connection drops, the reader reconnects with backoff, resubscribes every
channel, and tells each subscription (``reconnected``) that it may have
missed events, so its owner can fill the gap from the log.

On Redis Cluster (``sharded=True``) a router speaks sharded pub/sub
(``SSUBSCRIBE``, one channel per command since a command's channels must share
a slot) to one shard's master; ``redis_sharded_pubsub.py`` keeps one router per
shard and moves channels when their slots move.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from chatrelay.engine.base import Event
from chatrelay.engine.events import offset_of
from chatrelay.engine.subscription import QueueSubscription
from chatrelay.exceptions import EngineError

logger = logging.getLogger(__name__)

# How long ``subscribe`` waits for Redis to confirm the SUBSCRIBE.
SUBSCRIBE_TIMEOUT = 5.0
# A silent pub/sub connection is PINGed this often; no answer by the next tick
# means it is dead (a half-open TCP connection would otherwise hang forever).
PUBSUB_PING_INTERVAL = 15.0
# Reconnect backoff of the pub/sub connection (with jitter, so a restarted
# Redis is not hit by every gateway at once); a connection that lived this
# long resets the backoff.
RECONNECT_MIN_DELAY = 0.05
RECONNECT_MAX_DELAY = 2.0
RECONNECT_STABLE_AFTER = 1.0
# Channels per SUBSCRIBE when resubscribing: keeps each command small.
SUBSCRIBE_BATCH = 500
# aclose waits this long for the reader task.
CLOSE_TIMEOUT = 5.0


class LiveRouter(Protocol):
    """What the broker needs of a router of live events (``PubSubRouter``, ``ShardedPubSub``)."""

    @property
    def dropped_live_events(self) -> int: ...

    @property
    def reconnects(self) -> int: ...

    async def join(self, name: bytes, subscription: QueueSubscription) -> None: ...

    async def leave(self, name: bytes, subscription: QueueSubscription) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Channel:
    """One subscribed channel: its local subscribers and SUBSCRIBE bookkeeping.

    ``sent`` counts SUBSCRIBE commands for it on the current connection and
    ``acked`` their confirmations; a waiter is confirmed once ``acked``
    reaches the ``sent`` it saw, so a stale confirmation never counts.
    """

    subscribers: set[QueueSubscription] = field(default_factory=set)
    sent: int = 0
    acked: int = 0
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)


class PubSubRouter:
    """Multiplexes the session channels of one process over one pub/sub connection.

    ``new_connection`` makes an unconnected redis-py connection; when the
    connection breaks, ``on_connection_lost`` is told (the engine closes its
    pool's idle connections then). ``sharded``: sharded pub/sub (Redis Cluster).
    """

    def __init__(
        self,
        new_connection: Callable[[], AbstractConnection],
        on_connection_lost: Callable[[BaseException], Awaitable[None]],
        *,
        sharded: bool = False,
    ) -> None:
        self._new_connection = new_connection
        self._subscribe, self._unsubscribe = (
            ("SSUBSCRIBE", "SUNSUBSCRIBE") if sharded else ("SUBSCRIBE", "UNSUBSCRIBE")
        )
        self._message, self._confirmation = (
            (b"smessage", b"ssubscribe") if sharded else (b"message", b"subscribe")
        )
        self._batch = 1 if sharded else SUBSCRIBE_BATCH
        self._on_connection_lost = on_connection_lost
        self._channels: dict[bytes, _Channel] = {}
        self._lock = asyncio.Lock()
        self._conn: AbstractConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._heard_at = 0.0  # when the current connection last said anything
        self._closed = False
        #: Live events dropped because a subscriber's queue was full (all subscribers).
        self.dropped_live_events = 0
        #: Times the pub/sub connection was re-established after being lost.
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        """Whether the pub/sub connection is up now."""
        return self._conn is not None and self._conn.is_connected

    @property
    def channels(self) -> list[bytes]:
        """The channels with local subscribers."""
        return [name for name, channel in self._channels.items() if channel.subscribers]

    def subscribers(self, name: bytes) -> list[QueueSubscription]:
        """The local subscribers of channel ``name``."""
        channel = self._channels.get(name)
        return list(channel.subscribers) if channel else []

    async def join(self, name: bytes, subscription: QueueSubscription) -> None:
        """Add ``subscription`` to channel ``name``; return once Redis confirmed it.

        Raises ``EngineError`` when no confirmation comes within ``SUBSCRIBE_TIMEOUT``.
        """
        if self._closed:
            raise EngineError("the engine is closed")
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="redis-pubsub")
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        async with self._lock:
            channel = self._channels.setdefault(name, _Channel())
            first = not channel.subscribers
            channel.subscribers.add(subscription)
            connected = self._conn is not None and self._conn.is_connected
            # Disconnected: only the next connection's resubscription confirms.
            target = channel.sent + 1 if first or not connected else channel.sent
            if channel.acked >= target:
                confirmed.set_result(None)
            else:
                channel.waiters.append((target, confirmed))
            if first and connected:
                channel.sent = target
                await self._send(self._subscribe, name)
        try:
            await asyncio.wait_for(confirmed, SUBSCRIBE_TIMEOUT)
        except BaseException as exc:
            await self.leave(name, subscription)
            if isinstance(exc, TimeoutError):
                raise EngineError("Redis did not confirm a subscription in time") from exc
            raise

    async def leave(self, name: bytes, subscription: QueueSubscription) -> None:
        """Remove ``subscription``; the last one of a channel unsubscribes it. Idempotent."""
        channel = self._channels.get(name)
        if channel is None:
            return
        channel.subscribers.discard(subscription)  # at once, so a cancelled leave still leaves
        channel.waiters = [(t, f) for t, f in channel.waiters if not f.done()]
        if channel.subscribers:
            return
        async with self._lock:
            if self._channels.get(name) is not channel or channel.subscribers:
                return  # someone subscribed again meanwhile
            await self._send(self._unsubscribe, name)
            if channel.acked >= channel.sent:
                del self._channels[name]

    async def _send(self, command: str, name: bytes) -> None:
        """Send on the pub/sub connection if it is up; if it is not, the reader reconnects."""
        conn = self._conn
        # A dropped connection must not reconnect itself here (redis-py would,
        # on send): only the reader resubscribes, with its bookkeeping.
        if conn is None or not conn.is_connected:
            return
        try:
            await conn.send_command(command, name)
        # AttributeError: redis-py's writer vanishes if the reader drops it mid-send.
        except (RedisError, OSError, AttributeError) as exc:
            logger.debug("%s failed (%r); the pub/sub reader reconnects", command, exc)

    async def _run(self) -> None:
        """The reader task: (re)connect, resubscribe, route messages, forever."""
        failures = 0
        connected_before = False
        while True:
            if failures:
                delay = min(RECONNECT_MAX_DELAY, RECONNECT_MIN_DELAY * 2 ** (failures - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                conn = await self._open()
            except (RedisError, OSError) as exc:
                failures += 1
                logger.warning("Redis pub/sub connect failed (attempt %d): %s", failures, exc)
                continue
            except Exception:
                failures += 1
                logger.exception("Redis pub/sub connect failed (attempt %d)", failures)
                continue
            if connected_before:
                self.reconnects += 1
                logger.warning(
                    "Redis pub/sub reconnected; resubscribed %d channels", len(self._channels)
                )
            connected_before = True
            opened = time.monotonic()
            try:
                await self._read(conn)
            except (RedisError, OSError) as exc:
                logger.warning("Redis pub/sub connection lost: %s", exc)
                await self._on_connection_lost(exc)
            except Exception:
                logger.exception("Redis pub/sub reader failed; reconnecting")
            finally:
                await self._drop(conn)
            failures = 0 if time.monotonic() - opened >= RECONNECT_STABLE_AFTER else failures + 1

    async def _open(self) -> AbstractConnection:
        conn = self._new_connection()
        # No read timeout: a pub/sub connection is silent while nothing is published,
        # and with the pool's command timeout every read of an idle gateway timed out
        # and dropped it (resubscribing, and repairing, every channel every 5 s). The
        # watchdog PINGs a silent connection instead.
        conn.socket_timeout = None
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            async with self._lock:
                for name in [n for n, c in self._channels.items() if not c.subscribers]:
                    del self._channels[name]
                for channel in self._channels.values():
                    channel.sent, channel.acked = 1, 0
                    channel.waiters = [(1, future) for _, future in channel.waiters]
                names = list(self._channels)
                for start in range(0, len(names), self._batch):
                    await conn.send_command(self._subscribe, *names[start : start + self._batch])
                self._conn = conn
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        return conn

    async def _drop(self, conn: AbstractConnection) -> None:
        async with self._lock:
            self._conn = None
            for channel in self._channels.values():
                channel.sent = channel.acked = 0
                for subscription in channel.subscribers:
                    subscription.connection_lost()
        await conn.disconnect(nowait=True)

    async def _read(self, conn: AbstractConnection) -> None:
        # No timeout on each read (it cost a timer per message on the hot path,
        # docs/benchmarks.md): a watchdog notices a silent connection instead.
        self._heard_at = time.monotonic()
        watchdog = asyncio.create_task(self._watch(conn), name="redis-pubsub-watchdog")
        try:
            while True:
                reply = await conn.read_response(push_request=True)
                self._heard_at = time.monotonic()
                if reply is None:
                    continue
                kind = reply[0]
                if kind == self._message:
                    self._route(reply[1], reply[2])
                elif kind == self._confirmation:
                    self._confirm(reply[1])
        finally:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)

    async def _watch(self, conn: AbstractConnection) -> None:
        """PING a connection silent for ``PUBSUB_PING_INTERVAL``; drop it if that goes unanswered.

        A half-open TCP connection (a Redis host gone without a FIN) would
        otherwise leave the reader waiting forever while events are missed.
        """
        pinged_at: float | None = None
        while True:
            await asyncio.sleep(PUBSUB_PING_INTERVAL)
            # Answered means heard from since the PING, not within the last interval:
            # an idle connection's PONG is a whole interval old by the next tick.
            if pinged_at is not None and self._heard_at < pinged_at:
                logger.warning("Redis did not answer a pub/sub PING; reconnecting")
                await conn.disconnect(nowait=True)  # the reader's read fails and it reconnects
                return
            pinged_at = None
            if time.monotonic() - self._heard_at < PUBSUB_PING_INTERVAL:
                continue
            async with self._lock:
                pinged_at = time.monotonic()
                await conn.send_command("PING")

    def _route(self, name: bytes, data: bytes) -> None:
        channel = self._channels.get(name)
        if channel is None or not channel.subscribers:
            return
        event = Event(offset_of(data), data)
        for subscription in channel.subscribers:
            if not subscription.deliver(event):
                self.dropped_live_events += 1

    def _confirm(self, name: bytes) -> None:
        channel = self._channels.get(name)
        if channel is None:
            return
        channel.acked += 1
        pending = []
        for target, future in channel.waiters:
            if channel.acked < target:
                pending.append((target, future))
            elif not future.done():
                future.set_result(None)
        channel.waiters = pending
        for subscription in channel.subscribers:
            subscription.resubscribed()
        if not channel.subscribers and channel.acked >= channel.sent:
            del self._channels[name]

    async def aclose(self) -> None:
        """Stop the reader and end every subscription's iteration (bounded in time)."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=CLOSE_TIMEOUT)
            if not done:
                logger.error("Redis pub/sub reader did not stop within %.0fs", CLOSE_TIMEOUT)
            elif not task.cancelled() and task.exception() is not None:
                logger.error("Redis pub/sub reader failed", exc_info=task.exception())
        for channel in self._channels.values():
            for subscription in channel.subscribers:
                subscription.close()
        self._channels.clear()
