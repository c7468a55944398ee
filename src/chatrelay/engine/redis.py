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
import random
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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
from chatrelay.engine.base import Connection, Event, History, Lease
from chatrelay.engine.memory import encode_event
from chatrelay.exceptions import EngineError, LeaseLost

logger = logging.getLogger(__name__)

# Clients keep offsets across reconnects and sleeping tabs; a counter that
# went back to 0 would make them skip events, so it outlives the log by far.
OFFSET_TTL = 7 * 24 * 3600.0
# A subscriber that falls this far behind loses live events (at-most-once);
# its relay repairs the gap from the log.
SUBSCRIBER_QUEUE_SIZE = 10_000
# Commands in flight per process; more wait up to POOL_WAIT_TIMEOUT for a connection.
POOL_MAX_CONNECTIONS = 64
POOL_WAIT_TIMEOUT = 5.0
# Every command and connect has a deadline: a stuck Redis becomes an EngineError.
COMMAND_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
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
# Channels per SUBSCRIBE when resubscribing, sessions per registry script:
# keeps each command and each script's time inside Redis small.
SUBSCRIBE_BATCH = 500
SCAN_BATCH = 500
# The seed's TTL of ``sessions:user:{userId}``.
USER_SESSIONS_TTL = 1800
# Registry indexes outlive their last socket this long, so ``cleanup_stale``
# sees (and counts) what it drops; past it Redis drops them even if nobody cleans.
INDEX_GRACE = 3600.0
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
_OFFSET_START = len(b'{"offset":')


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _new_epoch() -> str:
    return os.urandom(8).hex()


def _offset_of(data: bytes) -> int:
    """The offset of an event's JSON, which publish.lua put first."""
    end = data.find(b",", _OFFSET_START)
    return int(data[_OFFSET_START : end if end > 0 else -1])


def _script(name: str) -> str:
    path = resources.files("chatrelay.engine") / "redis_scripts" / f"{name}.lua"
    return path.read_text(encoding="utf-8")


def _text(value: bytes | str) -> str:
    # The client is made without decode_responses, so replies are bytes.
    return value.decode() if isinstance(value, bytes) else value


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


class RedisSubscription:
    """Live events of one session, fed by the engine's shared pub/sub connection.

    Iterating yields events in offset order and ends when the engine closes.
    Live delivery is at-most-once, and these counters say when it was not:

    - ``dropped``: events lost because this subscriber's queue was full.
    - ``reconnects``: how many times the pub/sub connection was re-established
      while this subscription was open. Events published while it was down
      were missed; ``reconnected`` is set when Redis confirms the
      resubscription (clear it once handled), so a relay can repair the gap
      from ``history`` even when no later event reveals it.
    """

    def __init__(self, session_id: str, queue_size: int) -> None:
        self.session_id = session_id
        self.dropped = 0
        self.reconnects = 0
        self.reconnected = asyncio.Event()
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(queue_size)
        self._lost_connection = False

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (event := await self._queue.get()) is not None:
            yield event

    def _close(self) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)


@dataclass
class _Channel:
    """One subscribed channel: its local subscribers and SUBSCRIBE bookkeeping.

    ``sent`` counts SUBSCRIBE commands for it on the current connection and
    ``acked`` their confirmations; a waiter is confirmed once ``acked``
    reaches the ``sent`` it saw, so a stale confirmation never counts.
    """

    subscribers: set[RedisSubscription] = field(default_factory=set)
    sent: int = 0
    acked: int = 0
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)


class RedisEngine:
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
        self._queue_size = subscriber_queue_size
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
        self._pubsub_kwargs = {
            **self._pool.connection_kwargs,
            "client_name": client_name + ":pubsub",
        }
        self._redis = Redis.from_pool(self._pool)
        scripts = {name: self._redis.register_script(_script(name)) for name in _SCRIPTS}
        self._scripts: Mapping[str, AsyncScript] = scripts
        self._channels: dict[bytes, _Channel] = {}
        self._pubsub_lock = asyncio.Lock()
        self._pubsub_conn: AbstractConnection | None = None
        self._pubsub_task: asyncio.Task[None] | None = None
        self._closed = False
        #: Live events dropped because a subscriber's queue was full (all subscribers).
        self.dropped_live_events = 0
        #: Times the pub/sub connection was re-established after being lost.
        self.pubsub_reconnects = 0
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
        name = (keys.SESSION_CHANNEL + session_id).encode()
        subscription = RedisSubscription(session_id, self._queue_size)
        await self._join(name, subscription)
        try:
            yield subscription
        finally:
            await self._leave(name, subscription)

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

    # -- pub/sub multiplexing

    async def _join(self, name: bytes, subscription: RedisSubscription) -> None:
        if self._closed:
            raise EngineError("the engine is closed")
        if self._pubsub_task is None or self._pubsub_task.done():
            self._pubsub_task = asyncio.create_task(self._run_pubsub(), name="redis-pubsub")
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        async with self._pubsub_lock:
            channel = self._channels.setdefault(name, _Channel())
            first = not channel.subscribers
            channel.subscribers.add(subscription)
            connected = self._pubsub_conn is not None and self._pubsub_conn.is_connected
            # Disconnected: only the next connection's resubscription confirms.
            target = channel.sent + 1 if first or not connected else channel.sent
            if channel.acked >= target:
                confirmed.set_result(None)
            else:
                channel.waiters.append((target, confirmed))
            if first and connected:
                channel.sent = target
                await self._send_pubsub("SUBSCRIBE", name)
        try:
            await asyncio.wait_for(confirmed, SUBSCRIBE_TIMEOUT)
        except BaseException as exc:
            await self._leave(name, subscription)
            if isinstance(exc, TimeoutError):
                raise EngineError("Redis did not confirm a subscription in time") from exc
            raise

    async def _leave(self, name: bytes, subscription: RedisSubscription) -> None:
        channel = self._channels.get(name)
        if channel is None:
            return
        channel.subscribers.discard(subscription)  # at once, so a cancelled leave still leaves
        channel.waiters = [(t, f) for t, f in channel.waiters if not f.done()]
        if channel.subscribers:
            return
        async with self._pubsub_lock:
            if self._channels.get(name) is not channel or channel.subscribers:
                return  # someone subscribed again meanwhile
            await self._send_pubsub("UNSUBSCRIBE", name)
            if channel.acked >= channel.sent:
                del self._channels[name]

    async def _send_pubsub(self, command: str, name: bytes) -> None:
        """Send on the pub/sub connection if it is up; if it is not, the reader reconnects."""
        conn = self._pubsub_conn
        # A dropped connection must not reconnect itself here (redis-py would,
        # on send): only the reader resubscribes, with its bookkeeping.
        if conn is None or not conn.is_connected:
            return
        try:
            await conn.send_command(command, name)
        # AttributeError: redis-py's writer vanishes if the reader drops it mid-send.
        except (RedisError, OSError, AttributeError) as exc:
            logger.debug("%s failed (%r); the pub/sub reader reconnects", command, exc)

    async def _run_pubsub(self) -> None:
        """The reader task: (re)connect, resubscribe, route messages, forever."""
        failures = 0
        connected_before = False
        while True:
            if failures:
                delay = min(RECONNECT_MAX_DELAY, RECONNECT_MIN_DELAY * 2 ** (failures - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                conn = await self._open_pubsub()
            except (RedisError, OSError) as exc:
                failures += 1
                logger.warning("Redis pub/sub connect failed (attempt %d): %s", failures, exc)
                continue
            except Exception:
                failures += 1
                logger.exception("Redis pub/sub connect failed (attempt %d)", failures)
                continue
            if connected_before:
                self.pubsub_reconnects += 1
                logger.warning(
                    "Redis pub/sub reconnected; resubscribed %d channels", len(self._channels)
                )
            connected_before = True
            opened = time.monotonic()
            try:
                await self._read_pubsub(conn)
            except (RedisError, OSError) as exc:
                logger.warning("Redis pub/sub connection lost: %s", exc)
                await self._connection_failed(exc)
            except Exception:
                logger.exception("Redis pub/sub reader failed; reconnecting")
            finally:
                await self._drop_pubsub(conn)
            failures = 0 if time.monotonic() - opened >= RECONNECT_STABLE_AFTER else failures + 1

    async def _open_pubsub(self) -> AbstractConnection:
        conn = self._pool.connection_class(**self._pubsub_kwargs)
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            async with self._pubsub_lock:
                for name in [n for n, c in self._channels.items() if not c.subscribers]:
                    del self._channels[name]
                for channel in self._channels.values():
                    channel.sent, channel.acked = 1, 0
                    channel.waiters = [(1, future) for _, future in channel.waiters]
                names = list(self._channels)
                for start in range(0, len(names), SUBSCRIBE_BATCH):
                    await conn.send_command("SUBSCRIBE", *names[start : start + SUBSCRIBE_BATCH])
                self._pubsub_conn = conn
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        return conn

    async def _drop_pubsub(self, conn: AbstractConnection) -> None:
        async with self._pubsub_lock:
            self._pubsub_conn = None
            for channel in self._channels.values():
                channel.sent = channel.acked = 0
                for subscription in channel.subscribers:
                    subscription._lost_connection = True
        await conn.disconnect(nowait=True)

    async def _read_pubsub(self, conn: AbstractConnection) -> None:
        waiting_for_pong = False
        while True:
            reply = await conn.read_response(timeout=PUBSUB_PING_INTERVAL, push_request=True)
            if reply is None:
                if waiting_for_pong:
                    raise RedisConnectionError("Redis did not answer a pub/sub PING")
                async with self._pubsub_lock:
                    await conn.send_command("PING")
                waiting_for_pong = True
                continue
            waiting_for_pong = False
            kind = reply[0]
            if kind == b"message":
                self._route(reply[1], reply[2])
            elif kind == b"subscribe":
                self._confirm(reply[1])

    def _route(self, name: bytes, data: bytes) -> None:
        channel = self._channels.get(name)
        if channel is None or not channel.subscribers:
            return
        event = Event(_offset_of(data), data)
        for subscription in channel.subscribers:
            try:
                subscription._queue.put_nowait(event)
            except asyncio.QueueFull:
                subscription.dropped += 1
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
            if subscription._lost_connection:
                subscription._lost_connection = False
                subscription.reconnects += 1
                subscription.reconnected.set()
        if not channel.subscribers and channel.acked >= channel.sent:
            del self._channels[name]

    # -- registry

    async def register(self, connection: Connection, ttl: float) -> None:
        c = connection
        data = orjson.dumps(
            {
                "connection_id": c.connection_id,
                "session_id": c.session_id,
                "user_id": c.user_id,
                "node_id": c.node_id,
            }
        )
        await self._eval(
            "register",
            [
                keys.CONNECTION + c.connection_id,
                keys.SESSION_CONNECTIONS + c.session_id,
                keys.USER_CONNECTIONS + c.user_id,
                keys.ACTIVE_SESSIONS,
                keys.USER_SESSIONS + c.user_id,
            ],
            [
                c.connection_id,
                data,
                _ms(ttl),
                c.session_id,
                c.user_id,
                _ms(INDEX_GRACE),
                USER_SESSIONS_TTL,
            ],
        )

    async def heartbeat(self, connection: Connection, ttl: float) -> None:
        await self.register(connection, ttl)

    async def unregister(self, connection: Connection) -> None:
        c = connection
        await self._eval(
            "unregister",
            [
                keys.CONNECTION + c.connection_id,
                keys.SESSION_CONNECTIONS + c.session_id,
                keys.USER_CONNECTIONS + c.user_id,
                keys.ACTIVE_SESSIONS,
            ],
            [c.connection_id, c.session_id],
        )

    async def session_connections(self, session_id: str) -> list[Connection]:
        found = await self._eval(
            "session_connections", [keys.SESSION_CONNECTIONS + session_id], [keys.CONNECTION]
        )
        return [Connection(**orjson.loads(data)) for data in found]

    async def user_connection_count(self, user_id: str) -> int:
        return int(await self._eval("count_live", [keys.USER_CONNECTIONS + user_id], []))

    async def user_sessions(self, user_id: str) -> set[str]:
        try:
            members = await self._redis.smembers(keys.USER_SESSIONS + user_id)
        except (RedisError, OSError) as exc:
            await self._connection_failed(exc)
            raise EngineError(f"Redis SMEMBERS failed: {exc}") from exc
        return {_text(member) for member in members}

    async def _active_batches(self) -> AsyncIterator[list[tuple[str, str]]]:
        """``sessions:active`` in batches (HSCAN), so no script walks it all at once."""
        cursor, seen = 0, set[bytes | str]()
        while True:
            try:
                cursor, batch = await self._redis.hscan(
                    keys.ACTIVE_SESSIONS, cursor, count=SCAN_BATCH
                )
            except (RedisError, OSError) as exc:
                await self._connection_failed(exc)
                raise EngineError(f"Redis HSCAN failed: {exc}") from exc
            assert isinstance(batch, dict)
            pairs = [(_text(s), _text(u)) for s, u in batch.items() if s not in seen]
            seen.update(batch)
            if pairs:
                yield pairs
            if cursor == 0:
                return

    async def active_sessions(self) -> dict[str, str]:
        active: dict[str, str] = {}
        async for pairs in self._active_batches():
            live = await self._eval(
                "live_sessions", [], [keys.SESSION_CONNECTIONS, *(s for s, _ in pairs)]
            )
            active.update(pair for pair, flag in zip(pairs, live, strict=True) if flag)
        return active

    async def cleanup_stale(self) -> int:
        dropped = 0
        async for pairs in self._active_batches():
            dropped += await self._eval(
                "cleanup",
                [keys.ACTIVE_SESSIONS],
                [keys.SESSION_CONNECTIONS, keys.USER_CONNECTIONS, *(x for p in pairs for x in p)],
            )
        return dropped

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
        task, self._pubsub_task = self._pubsub_task, None
        if task is not None:
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=CLOSE_TIMEOUT)
            if not done:
                logger.error("Redis pub/sub reader did not stop within %.0fs", CLOSE_TIMEOUT)
            elif not task.cancelled() and task.exception() is not None:
                logger.error("Redis pub/sub reader failed", exc_info=task.exception())
        for channel in self._channels.values():
            for subscription in channel.subscribers:
                subscription._close()
        self._channels.clear()
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
