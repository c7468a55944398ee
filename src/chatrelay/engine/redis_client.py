"""The client core the Redis facets share: one pool, the scripts, one error mapping.

One :class:`RedisClient` per engine holds the connection pool (named in
``CLIENT LIST`` after the node), the key names of the deployment
(``keys.KeySpace``, with its optional prefix), the Lua scripts of
``redis_scripts/`` run by ``EVALSHA``, and :meth:`RedisClient.errors`, the one
place where Redis and socket errors become
:class:`~chatrelay.exceptions.EngineError`.

Commands are not retried: a publish whose reply was lost may or may not have
appended, and retrying it could append the event twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from chatrelay.engine.keys import KeySpace
from chatrelay.engine.redis_pubsub import LiveRouter, PubSubRouter
from chatrelay.exceptions import EngineError

logger = logging.getLogger(__name__)

# Commands in flight per process; more wait up to POOL_WAIT_TIMEOUT for a connection.
POOL_MAX_CONNECTIONS = 64
POOL_WAIT_TIMEOUT = 5.0
# Every command and connect has a deadline: a stuck Redis becomes an EngineError.
COMMAND_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
# ``aclose`` waits this long for the connections, then gives up loudly.
CLOSE_TIMEOUT = 5.0

#: The Lua scripts, shipped as package data: ``run(name)`` runs ``{name}.lua``.
SCRIPT_FOLDER = resources.files("chatrelay.engine") / "redis_scripts"
#: A script line ``--#include _name`` is replaced by ``_name.lua`` (shared Lua functions).
_INCLUDE = re.compile(r"^--#include (_\w+)$", re.MULTILINE)


def script_sources() -> dict[str, str]:
    """Every script's Lua by name, includes resolved (``_*.lua`` are only included)."""
    sources = {}
    for entry in SCRIPT_FOLDER.iterdir():
        if entry.name.endswith(".lua") and not entry.name.startswith("_"):
            text = entry.read_text("utf-8")
            text = _INCLUDE.sub(lambda m: (SCRIPT_FOLDER / f"{m[1]}.lua").read_text("utf-8"), text)
            sources[entry.name.removesuffix(".lua")] = text
    return sources


def connection_name(node_id: str) -> str:
    """This process's name in ``CLIENT LIST``: ``chatrelay:`` + the node id (default host-pid)."""
    node_id = node_id or f"{socket.gethostname()}-{os.getpid()}"
    return "chatrelay:" + "".join(c if c.isalnum() or c in "-_.:" else "-" for c in node_id)


def milliseconds(seconds: float) -> int:
    """A TTL in whole milliseconds (at least 1: Redis refuses 0)."""
    return max(1, round(seconds * 1000))


def as_text(value: bytes | str) -> str:
    """A reply as ``str`` (the client is made without decode_responses: replies are bytes)."""
    return value.decode() if isinstance(value, bytes) else value


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


class RedisCore:
    """What the Redis and Redis Cluster clients share: key names, scripts, error mapping.

    A subclass sets ``keys``, ``client_name`` and ``redis`` (a redis-py client with
    the command methods the facets call), then calls ``_load_scripts``.
    """

    #: True on Redis Cluster: scripts check the meta's writer and fan out with SPUBLISH.
    cluster = False
    keys: KeySpace
    client_name: str
    redis: Any

    def _load_scripts(self) -> None:
        #: Every script by name (``redis_scripts/{name}.lua``); loaded by its first EVALSHA.
        self.scripts: Mapping[str, AsyncScript] = {
            name: self.redis.register_script(text) for name, text in script_sources().items()
        }

    @asynccontextmanager
    async def errors(self, what: str) -> AsyncIterator[None]:
        """Turn a Redis or socket error (timeouts included) inside into ``EngineError``.

        When the connection broke, ``connection_lost`` is told first (the
        single-Redis client closes its pool's idle connections then).
        """
        try:
            yield
        # TimeoutError is an OSError; RedisClusterException: no node serves a slot.
        except (RedisError, RedisClusterException, OSError) as exc:
            await self.connection_lost(exc)
            raise EngineError(f"Redis {what} failed: {exc}") from exc

    async def connection_lost(self, exc: BaseException) -> None:
        """A command or the pub/sub connection failed with ``exc`` (nothing to do by default)."""

    def live_router(self) -> LiveRouter:
        """A router of this process's live events (the broker makes one)."""
        raise NotImplementedError

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run the script ``redis_scripts/{name}.lua`` (one ``EVALSHA``)."""
        async with self.errors(f"script {name}"):
            return await self.scripts[name](keys, args)

    async def ping(self) -> bool:
        """True when Redis answers; False (not an error) when it cannot be reached."""
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    async def aclose(self) -> None:
        """Close the connections (bounded in time)."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.redis.aclose()
        except TimeoutError:
            logger.error("Redis connections did not close within %.0fs", CLOSE_TIMEOUT)


class RedisClient(RedisCore):
    """One Redis connection pool with the engine's scripts and key names.

    ``url`` is a redis-py URL (``redis://host:6379/0``, ``rediss://``,
    ``unix://``); its query options win over the defaults here. ``node_id``
    (default: host-pid) names this process's connections in ``CLIENT LIST``;
    ``prefix`` goes in front of every key and channel name; ``max_connections``
    (default ``POOL_MAX_CONNECTIONS``) bounds the pool.
    """

    def __init__(
        self, url: str, *, node_id: str = "", prefix: str = "", max_connections: int | None = None
    ) -> None:
        self.keys = KeySpace(prefix)
        self.client_name = connection_name(node_id)
        self._pool = _CheckedPool.from_url(
            url,
            max_connections=max_connections or POOL_MAX_CONNECTIONS,
            timeout=POOL_WAIT_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            client_name=self.client_name,
        )
        #: The client for single commands; wrap each call in ``errors``.
        self.redis = Redis.from_pool(self._pool)
        self._load_scripts()

    async def connection_lost(self, exc: BaseException) -> None:
        """Close the pool's idle connections if ``exc`` says a connection broke.

        A Redis that restarted closed every connection of the pool, and
        redis-py notices a closed one only when a command on it fails; without
        this each stale connection would fail one more command (a chunk, a
        chat) long after Redis came back. Closed ones reconnect on next use.
        """
        if isinstance(exc, (RedisConnectionError, OSError)):
            try:
                await self._pool.disconnect(inuse_connections=False)
            except (RedisError, OSError) as again:
                logger.debug("closing idle Redis connections failed: %r", again)

    def new_connection(self, name_suffix: str) -> AbstractConnection:
        """An unconnected connection outside the pool, named ``client_name + name_suffix``."""
        kwargs = {**self._pool.connection_kwargs, "client_name": self.client_name + name_suffix}
        return self._pool.connection_class(**kwargs)

    def live_router(self) -> PubSubRouter:
        """The router of this process's live events: one pub/sub connection."""
        return PubSubRouter(lambda: self.new_connection(":pubsub"), self.connection_lost)
