"""What a gateway process runs on: its owners, built once and composed.

Each part owns its own state and tasks (the relay its pumps, the connection
registry its sockets and heartbeat); this object only holds them, so every
request handler reaches the same instances. ``GatewayServices.running``
builds them and closes them in the documented order (docs/architecture.md,
"Shutting down").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from chatrelay import metrics
from chatrelay.auth.base import Authenticator
from chatrelay.config import Settings
from chatrelay.engine.base import Engine
from chatrelay.gateway.chats import Conversations
from chatrelay.gateway.connections import ConnectionRegistry, DrainHook
from chatrelay.gateway.owners import SessionOwners
from chatrelay.gateway.relay import Relay
from chatrelay.gateway.upstream import Dispatcher
from chatrelay.node_status import NodeReporter, gauge_value
from chatrelay.store.conversations import ConversationStore


class HealthReporting(Protocol):
    """Says how the workers behind a dispatcher are (``/api/health``)."""

    def health(self) -> list[dict[str, Any]]: ...


class WorkerDispatcher(Dispatcher, HealthReporting, Protocol):
    """A dispatcher that can also say how its workers are."""


@dataclass(frozen=True)
class GatewayServices:
    """The parts of one gateway process; build it with ``running``."""

    settings: Settings
    engine: Engine
    store: ConversationStore
    dispatcher: WorkerDispatcher
    auth: Authenticator
    model: str
    relay: Relay
    conversations: Conversations
    connections: ConnectionRegistry
    owners: SessionOwners

    @classmethod
    @asynccontextmanager
    async def running(
        cls,
        settings: Settings,
        *,
        engine: Engine,
        store: ConversationStore,
        dispatcher: WorkerDispatcher,
        auth: Authenticator,
        model: str,
        drain_hooks: Iterable[DrainHook] = (),
    ) -> AsyncIterator[GatewayServices]:
        """The gateway's parts for the context's life; on exit the heartbeat stops, then the relay.

        The engine, store and dispatcher are the caller's to close, after this.
        """
        async with AsyncExitStack() as stack:
            relay = await stack.enter_async_context(aclosing(Relay(engine.broker)))
            connections = await stack.enter_async_context(
                ConnectionRegistry(
                    engine.registry,
                    ttl=settings.heartbeat_ttl,
                    max_per_user=settings.max_connections_per_user,
                    drain_timeout=settings.drain_grace_seconds,
                    drain_hooks=drain_hooks,
                    node_id=settings.node_id,
                )
            )
            # Closed before the store is (the caller's, after this): a lookup still
            # running at shutdown must not leave a pooled connection behind.
            owners = await stack.enter_async_context(aclosing(SessionOwners(store)))
            services = cls(
                settings=settings,
                engine=engine,
                store=store,
                dispatcher=dispatcher,
                auth=auth,
                model=model,
                relay=relay,
                conversations=Conversations(settings, engine, store, dispatcher, owners),
                connections=connections,
                owners=owners,
            )
            await stack.enter_async_context(
                NodeReporter(
                    engine,
                    kind="gateway",
                    node_id=settings.node_id,
                    collect=services.node_status,
                    store_ping=store.ping,
                    chunks=metrics.CHUNKS_RELAYED,
                    latency=metrics.CHUNK_LATENCY,
                    latency_bounds=metrics.LATENCY_BUCKETS,
                )
            )
            yield services

    @property
    def node_id(self) -> str:
        return self.settings.node_id

    async def node_status(self) -> dict[str, Any]:
        """This gateway's own part of its node status (``node_status.py`` adds the rest)."""
        workers = self.dispatcher.health()
        return {
            "state": "draining" if self.connections.draining else "up",
            "sockets": self.connections.count,
            "running": int(gauge_value(metrics.RELAYED_SESSIONS)),
            "workers": workers,
            "cooled_down": [w["url"] for w in workers if w["state"] == "cooldown"],
        }

    async def drain(self) -> None:
        """Drain the sockets, then run the drain hooks (``serving.py`` calls it on SIGTERM)."""
        await self.connections.drain()
