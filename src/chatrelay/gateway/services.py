"""What a gateway process holds: its engine, store, relay and sockets.

One object, built at start and closed at stop, so every request handler
reaches the same instances and the background jobs have an owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatrelay.config import Settings
from chatrelay.engine.base import Connection, Engine
from chatrelay.exceptions import EngineError
from chatrelay.gateway.auth import Authenticator
from chatrelay.gateway.chats import Conversations
from chatrelay.gateway.relay import Relay
from chatrelay.gateway.upstream import Dispatcher
from chatrelay.store.conversations import ConversationStore

logger = logging.getLogger(__name__)

# Heartbeats per TTL: a registration survives two missed beats.
HEARTBEATS_PER_TTL = 3
DRAIN_POLL_SECONDS = 0.05


class HealthReporting(Protocol):
    def health(self) -> list[dict[str, Any]]: ...


class WorkerDispatcher(Dispatcher, HealthReporting, Protocol):
    """A dispatcher that can also say how its workers are."""


@dataclass
class GatewayServices:
    """The shared parts of one gateway process."""

    settings: Settings
    engine: Engine
    store: ConversationStore
    dispatcher: WorkerDispatcher
    auth: Authenticator
    model: str
    relay: Relay = field(init=False)
    conversations: Conversations = field(init=False)
    connections: dict[str, Connection] = field(default_factory=dict)
    sockets: set[Any] = field(default_factory=set)  # the open ChatSockets
    draining: bool = False
    # Run after the sockets are drained (the all-in-one waits for its generations).
    drain_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _heartbeat: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.relay = Relay(self.engine)
        self.conversations = Conversations(self.settings, self.engine, self.store, self.dispatcher)

    @property
    def node_id(self) -> str:
        return self.settings.node_id

    def start(self) -> None:
        """Start the background jobs (registry heartbeats)."""
        self._heartbeat = asyncio.create_task(self._beat(), name="registry-heartbeat")

    async def drain(self) -> None:
        """Refuse new sockets, send ``reconnect`` to every open one, wait until they close."""
        self.draining = True
        logger.info("draining %d sockets", len(self.sockets), extra={"node": self.node_id})
        for socket in list(self.sockets):
            socket.send_reconnect("node draining")
        while self.sockets:
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        for hook in self.drain_hooks:
            await hook()

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self.relay.aclose()

    async def _beat(self) -> None:
        ttl = self.settings.heartbeat_ttl
        while True:
            await asyncio.sleep(ttl / HEARTBEATS_PER_TTL)
            try:
                for connection in list(self.connections.values()):
                    await self.engine.registry.heartbeat(connection, ttl)
            except EngineError as exc:
                logger.warning("registry heartbeat failed: %s", exc)
