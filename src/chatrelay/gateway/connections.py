"""The sockets a gateway holds: their registration, heartbeats, limits and drain.

Every open socket is registered in the engine (so any node can count a
user's sockets and find a session's) with a TTL that a heartbeat task
renews; a socket that vanishes with its process expires on its own. On
drain the registry refuses new sockets, tells every open one to reconnect
elsewhere, and waits, on an event set when the last one leaves and no
longer than its timeout, before it runs the drain hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Protocol, Self

from chatrelay import metrics
from chatrelay.engine.base import Connection, Registry
from chatrelay.exceptions import EngineError, HandshakeRefused
from chatrelay.gateway import close_codes
from chatrelay.periodic import Periodic

logger = logging.getLogger(__name__)

# Heartbeats per TTL: a registration survives two missed beats.
HEARTBEATS_PER_TTL = 3
TOO_MANY_REASON = "too many connections for this user"

DrainHook = Callable[[], Awaitable[None]]


class Reconnectable(Protocol):
    """An open socket as the registry sees it."""

    def send_reconnect(self, reason: str) -> None:
        """Ask the client to reconnect elsewhere and close; must not block."""
        ...


class ConnectionRegistry:
    """Owns the life of this node's sockets in the engine's registry, and their drain.

    Use it as an async context manager: entering starts the heartbeat task,
    leaving stops it (the drain comes before, from ``serving.py``).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        ttl: float,
        max_per_user: int,
        drain_timeout: float,
        node_id: str,
        drain_hooks: Iterable[DrainHook] = (),
    ) -> None:
        self._registry = registry
        self._ttl = ttl
        self._max_per_user = max_per_user
        self._drain_timeout = drain_timeout
        # Run after the sockets are gone (the all-in-one waits for its generations).
        self._drain_hooks = tuple(drain_hooks)
        self._node_id = node_id
        self._open: dict[Connection, Reconnectable] = {}
        self._empty = asyncio.Event()
        self._empty.set()
        self._draining = False
        self._heartbeat = Periodic(ttl / HEARTBEATS_PER_TTL, self.renew, "registry-heartbeat")

    @property
    def draining(self) -> bool:
        """True once ``drain`` began: new sockets are refused."""
        return self._draining

    @property
    def count(self) -> int:
        """Sockets open on this node."""
        return len(self._open)

    async def __aenter__(self) -> Self:
        self._heartbeat.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._heartbeat.aclose()

    def refuse_if_draining(self) -> None:
        """Raise ``HandshakeRefused`` (1013) once the drain began."""
        if self._draining:
            raise HandshakeRefused(close_codes.OVERLOADED, "this node is draining; connect again")

    @contextlib.asynccontextmanager
    async def open(self, connection: Connection, socket: Reconnectable) -> AsyncIterator[None]:
        """Hold ``socket`` registered as ``connection`` while the context is open.

        The registration is refused atomically, on every node at once, when
        the user already holds their limit of sockets. Raises
        ``HandshakeRefused`` for that (4429) or when the node is draining
        (1013), and ``EngineError`` when the engine does not
        take the registration. Leaving unregisters (errors ignored: the TTL
        cleans up).
        """
        self.refuse_if_draining()
        try:
            if not await self._registry.register(
                connection, self._ttl, max_per_user=self._max_per_user
            ):
                raise HandshakeRefused(close_codes.TOO_MANY, TOO_MANY_REASON)
            # A drain that began meanwhile did not tell this socket to reconnect.
            self.refuse_if_draining()
            self._open[connection] = socket
            self._empty.clear()
            metrics.OPEN_SOCKETS.inc()
            try:
                yield
            finally:
                del self._open[connection]
                metrics.OPEN_SOCKETS.dec()
                if not self._open:
                    self._empty.set()
        finally:
            with contextlib.suppress(EngineError):
                await self._registry.unregister(connection)

    async def drain(self) -> None:
        """Refuse new sockets, send ``reconnect`` to every open one, wait until they close.

        Waits at most the drain timeout for the sockets, then runs the drain
        hooks in order. Cancel-safe; a second call repeats the reconnects.
        """
        self._draining = True
        logger.info("draining %d sockets", len(self._open), extra={"node": self._node_id})
        for socket in list(self._open.values()):
            socket.send_reconnect("node draining")
        try:
            async with asyncio.timeout(self._drain_timeout):
                await self._empty.wait()
        except TimeoutError:
            logger.warning(
                "%d sockets still open after %.1f s of drain",
                len(self._open),
                self._drain_timeout,
                extra={"node": self._node_id},
            )
        for hook in self._drain_hooks:
            await hook()

    async def renew(self) -> None:
        """Renew the registration of every open socket once (the heartbeat does it every TTL/3)."""
        try:
            await self._registry.heartbeat_many(list(self._open), self._ttl)
        except EngineError as exc:
            logger.warning("registry heartbeat failed: %s", exc)
