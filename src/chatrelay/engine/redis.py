"""The cluster engine: state shared by every node, in one Redis.

It keeps the guarantees of ``engine/base.py`` for every process connected to
the same Redis. Each state change is one Lua script (``redis_scripts/``), so
it is atomic and costs one round trip; ``publish`` in particular appends,
fans out and fences in one ``EVALSHA``. Live events reach a process through
one pub/sub connection, subscribed only to the sessions it has subscribers
for. ``docs/engine.md`` describes the key layout and the trade-offs.

Redis errors become :class:`~chatrelay.exceptions.EngineError`. Commands are
not retried: a publish whose reply was lost may or may not have appended,
and retrying it could append the event twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from chatrelay.engine import keys
from chatrelay.engine.base import Event, History, Lease
from chatrelay.engine.memory import encode_event
from chatrelay.engine.redis_pubsub import SUBSCRIBER_QUEUE_SIZE, PubSubRouter, RedisSubscription
from chatrelay.engine.redis_registry import RedisRegistry
from chatrelay.engine.redis_registry import as_text as _text
from chatrelay.engine.redis_registry import milliseconds as _ms
from chatrelay.exceptions import EngineError, LeaseLost

logger = logging.getLogger(__name__)

# Clients keep offsets across reconnects and sleeping tabs; a counter that
# went back to 0 would make them skip events, so it outlives the log by far.
OFFSET_TTL = 7 * 24 * 3600.0
# Commands in flight per process; more wait up to POOL_WAIT_TIMEOUT for a connection.
POOL_MAX_CONNECTIONS = 64
POOL_WAIT_TIMEOUT = 5.0
# Every command and connect has a deadline: a stuck Redis becomes an EngineError.
COMMAND_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
# Fencing counters and unreaped orphan leases are kept this long after last use.
FENCE_TTL = 7 * 24 * 3600.0
ORPHAN_RETENTION = 7 * 24 * 3600.0
# ``aclose`` waits this long for the reader task and the connections, then gives up loudly.
CLOSE_TIMEOUT = 5.0
# What publish.lua returns when the caller's lease is no longer current.
LEASE_LOST = 0
# Holders whose last fenced publish told us whether they were cancelled: one per
# generation running in this process, forgotten at release.
STOPS_REMEMBERED = 10_000


def _new_epoch() -> str:
    return os.urandom(8).hex()


def _script(name: str) -> str:
    path = resources.files("chatrelay.engine") / "redis_scripts" / f"{name}.lua"
    return path.read_text(encoding="utf-8")


def _lease_value(lease: Lease) -> str:
    return f"{lease.token}:{lease.holder}"


def _grant_description(key: str, holder: str, ttl: float) -> bytes:
    return orjson.dumps([key, holder, ttl])


def _grant_member(lease: Lease) -> bytes:
    return b"%d:%s" % (lease.token, _grant_description(lease.key, lease.holder, lease.ttl))


class _CheckedPool(BlockingConnectionPool):
    """A pool that never hands out a connection the server has already closed.

    redis-py's readiness check reads with a zero timeout, which gives up
    before it can see the end of a stream: after a Redis restart, every idle
    pooled connection would fail the next command sent on it (and the engine
    never retries). The stream's EOF flag is set as soon as the server's FIN
    arrives, so it is checked first.
    """

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        reader = getattr(connection, "_reader", None)
        if reader is not None and reader.at_eof():
            await connection.disconnect()
        await super().ensure_connection(connection)


class RedisEngine(RedisRegistry):
    """Engine on a Redis server shared by every node (see ``engine/base.py``).

    ``url`` is a redis-py URL (``redis://host:6379/0``, ``rediss://``,
    ``unix://``); its query options win over the defaults here. ``node_id``
    (default: host-pid) names this process's connections in ``CLIENT LIST``.
    """

    def __init__(
        self,
        url: str,
        max_events: int = 1000,
        log_ttl: float = 300.0,
        node_id: str = "",
        offset_ttl: float = OFFSET_TTL,
        subscriber_queue_size: int = SUBSCRIBER_QUEUE_SIZE,
        max_connections: int = POOL_MAX_CONNECTIONS,
    ) -> None:
        self._max_events = max_events
        self._log_ttl_ms = _ms(log_ttl)
        self._offset_ttl_ms = _ms(max(offset_ttl, 2 * log_ttl))
        node_id = node_id or f"{socket.gethostname()}-{os.getpid()}"
        client_name = "chatrelay:" + "".join(
            c if c.isalnum() or c in "-_.:" else "-" for c in node_id
        )
        self._pool = _CheckedPool.from_url(
            url,
            max_connections=max_connections,
            timeout=POOL_WAIT_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            client_name=client_name,
        )
        self._redis = Redis.from_pool(self._pool)
        scripts = {name: self._redis.register_script(_script(name)) for name in _SCRIPTS}
        self._scripts: Mapping[str, AsyncScript] = scripts
        pubsub_kwargs = {**self._pool.connection_kwargs, "client_name": client_name + ":pubsub"}
        self._pubsub = PubSubRouter(
            lambda: self._pool.connection_class(**pubsub_kwargs),
            self._connection_failed,
            subscriber_queue_size,
        )
        self._closed = False
        self._stops_seen: dict[str, bool] = {}

    async def _eval(self, name: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self._scripts[name](keys_, args)
        except (RedisError, OSError) as exc:
            await self._connection_failed(exc)
            raise EngineError(f"Redis script {name} failed: {exc}") from exc

    async def _connection_failed(self, exc: BaseException) -> None:
        """Close the pool's idle connections after a connection broke.

        A Redis that restarted closed every connection of the pool, and redis-py
        notices a closed one only when a command on it fails: without this, each
        stale connection would fail one more command (a chunk, a chat) long
        after Redis came back. Closed ones reconnect on their next use.
        """
        if isinstance(exc, (RedisConnectionError, OSError)):
            try:
                await self._pool.disconnect(inuse_connections=False)
            except (RedisError, OSError) as again:
                logger.debug("closing idle Redis connections failed: %r", again)

    # -- broker

    async def publish(
        self, session_id: str, frame: Mapping[str, Any], *, lease: Lease | None = None
    ) -> Event:
        """Append and fan out in one round trip (``publish.lua``); see ``Broker.publish``."""
        body = orjson.dumps(frame)
        keys_ = [keys.SESSION_META + session_id, keys.SESSION_LOG + session_id]
        args: list[Any] = [
            body,
            _new_epoch(),
            self._max_events,
            self._log_ttl_ms,
            self._offset_ttl_ms,
            keys.SESSION_CHANNEL + session_id,
        ]
        if lease is not None:
            keys_ += [keys.LEASE + lease.key, keys.CANCEL + lease.holder]
            args.append(_lease_value(lease))
        offset, stop = await self._eval("publish", keys_, args)
        if offset == LEASE_LOST:
            raise LeaseLost(f"lease {lease.key if lease else ''} is no longer held")
        if lease is not None:
            self._remember_stop(lease.holder, bool(stop))
        data = encode_event(offset, body)
        return Event(offset, data)

    @asynccontextmanager
    async def subscribe(self, session_id: str) -> AsyncIterator[RedisSubscription]:
        """Live events of one session (see ``Broker.subscribe``).

        Raises ``EngineError`` if Redis does not confirm the subscription in
        time. Safe to cancel: a cancelled ``__aenter__`` leaves nothing behind.
        """
        if self._closed:
            raise EngineError("the engine is closed")
        name = (keys.SESSION_CHANNEL + session_id).encode()
        subscription = self._pubsub.subscription(session_id)
        await self._pubsub.join(name, subscription)
        try:
            yield subscription
        finally:
            await self._pubsub.leave(name, subscription)

    async def position(self, session_id: str) -> tuple[str, int]:
        epoch, latest = await self._eval(
            "position",
            [keys.SESSION_META + session_id, keys.SESSION_LOG + session_id],
            [_new_epoch(), self._offset_ttl_ms],
        )
        return epoch.decode(), int(latest)

    async def history(self, session_id: str, since: int = 0) -> History:
        reply = await self._eval(
            "history",
            [keys.SESSION_META + session_id, keys.SESSION_LOG + session_id],
            [_new_epoch(), self._offset_ttl_ms, since, self._log_ttl_ms],
        )
        latest = int(reply[1])
        events = [Event(int(reply[i]), reply[i + 1]) for i in range(2, len(reply), 2)]
        first_kept = events[0].offset if events else latest + 1
        return History(reply[0].decode(), latest, events, complete=first_kept <= since + 1)

    # -- coordinator

    async def acquire(self, key: str, ttl: float, holder: str) -> Lease | None:
        token = await self._eval(
            "acquire",
            [keys.LEASE + key, keys.LEASE_FENCE + key, keys.LEASES_GRANTED],
            [holder, _ms(ttl), _ms(FENCE_TTL), _grant_description(key, holder, ttl)],
        )
        return None if token is None else Lease(key, int(token), holder, ttl)

    async def renew(self, lease: Lease) -> bool:
        renewed = await self._eval(
            "renew",
            [keys.LEASE + lease.key, keys.LEASES_GRANTED],
            [_lease_value(lease), _ms(lease.ttl), _grant_member(lease)],
        )
        return bool(renewed)

    async def release(self, lease: Lease) -> bool:
        self._stops_seen.pop(lease.holder, None)
        released = await self._eval(
            "release",
            [keys.LEASE + lease.key, keys.LEASES_GRANTED],
            [_lease_value(lease), _grant_member(lease)],
        )
        return bool(released)

    async def lease_holder(self, key: str) -> str | None:
        try:
            value = await self._redis.get(keys.LEASE + key)
        except (RedisError, OSError) as exc:
            await self._connection_failed(exc)
            raise EngineError(f"Redis GET failed: {exc}") from exc
        return None if value is None else _text(value).partition(":")[2]

    async def expired_leases(self, prefix: str) -> list[Lease]:
        members = await self._eval("expired_leases", [keys.LEASES_GRANTED], [_ms(ORPHAN_RETENTION)])
        found = []
        for member in members:
            token, _, description = member.partition(b":")
            key, holder, ttl = orjson.loads(description)
            if key.startswith(prefix):
                found.append(Lease(key, int(token), holder, ttl))
        return found

    async def forget_lease(self, lease: Lease) -> None:
        try:
            await self._redis.zrem(keys.LEASES_GRANTED, _grant_member(lease))
        except (RedisError, OSError) as exc:
            await self._connection_failed(exc)
            raise EngineError(f"Redis ZREM failed: {exc}") from exc

    async def request_cancel(self, message_id: str, ttl: float = 300.0) -> None:
        try:
            await self._redis.set(keys.CANCEL + message_id, b"1", px=_ms(ttl))
        except (RedisError, OSError) as exc:
            await self._connection_failed(exc)
            raise EngineError(f"Redis SET failed: {exc}") from exc

    def _remember_stop(self, holder: str, stop: bool) -> None:
        if len(self._stops_seen) >= STOPS_REMEMBERED and holder not in self._stops_seen:
            self._stops_seen.clear()  # only leaks from unreleased leases get here
        self._stops_seen[holder] = stop

    async def cancel_requested(self, message_id: str) -> bool:
        """Answered without a round trip for the holder of a lease that just published.

        A fenced publish reports whether its holder was asked to stop (the
        cancel key is checked inside ``publish.lua``), so a generation checking
        between chunks costs no second round trip.
        """
        known = self._stops_seen.get(message_id)
        if known is not None:
            return known
        try:
            return bool(await self._redis.exists(keys.CANCEL + message_id))
        except (RedisError, OSError) as exc:
            await self._connection_failed(exc)
            raise EngineError(f"Redis EXISTS failed: {exc}") from exc

    async def take_token(self, key: str, capacity: float, refill_per_second: float) -> float:
        wait = float(
            await self._eval("take_token", [keys.BUCKET + key], [capacity, refill_per_second])
        )
        return float("inf") if wait < 0 else wait

    # -- lifecycle

    @property
    def dropped_live_events(self) -> int:
        """Live events dropped because a subscriber's queue was full (all subscribers)."""
        return self._pubsub.dropped_live_events

    @property
    def pubsub_reconnects(self) -> int:
        """Times the pub/sub connection was re-established after being lost."""
        return self._pubsub.reconnects

    async def ping(self) -> bool:
        """True when Redis answers; False (not an error) when it cannot be reached."""
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def aclose(self) -> None:
        """Stop the pub/sub reader, end every subscription's iteration, close connections."""
        if self._closed:
            return
        self._closed = True
        await self._pubsub.aclose()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._redis.aclose()
        except TimeoutError:
            logger.error("Redis connections did not close within %.0fs", CLOSE_TIMEOUT)


_SCRIPTS = (
    "publish",
    "position",
    "history",
    "register",
    "unregister",
    "session_connections",
    "count_live",
    "live_sessions",
    "cleanup",
    "acquire",
    "renew",
    "release",
    "expired_leases",
    "take_token",
)
