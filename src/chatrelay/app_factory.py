"""Wires the parts into runnable apps; the only place gateway and worker meet.

- ``create_all_in_one_app``: ``chatrelay serve``, gateway and worker in one
  process, the worker called in-process;
- ``create_gateway_app``: ``chatrelay gateway``, workers reached over HTTP;
- ``create_worker_app``: ``chatrelay worker``.

Each opens its parts on one exit stack, so they close in reverse: the gateway's
own owners first (heartbeat, then relay), then the dispatcher (generations,
or the balancer), then the store and the engine (docs/architecture.md,
"Shutting down"). The drain before it is ``GatewayServices.drain``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from chatrelay import metrics
from chatrelay.auth import Authenticator, close_authenticator, create_authenticator
from chatrelay.config import Settings
from chatrelay.engine import create_engine
from chatrelay.engine.base import Engine
from chatrelay.gateway.app import create_app
from chatrelay.gateway.services import GatewayServices
from chatrelay.gateway.upstream import HttpBalancer, InProcessDispatcher
from chatrelay.llm.base import ModelBackend
from chatrelay.llm.factory import create_backend
from chatrelay.node_status import NodeReporter
from chatrelay.store.conversations import ConversationStore
from chatrelay.worker.app import WorkerServices
from chatrelay.worker.app import create_worker_app as _worker_app
from chatrelay.worker.generation import GenerationConfig, Generations
from chatrelay.worker.reaper import FailoverPolicy, Reaper

logger = logging.getLogger(__name__)


def build_engine(settings: Settings) -> Engine:
    return create_engine(
        settings.resolved_engine_url,
        max_events=settings.log_max_events,
        log_ttl=settings.log_ttl_seconds,
        node_id=settings.node_id,  # names this node's connections in Redis
        prefix=settings.redis_prefix,
    )


async def open_model(settings: Settings) -> ModelBackend:
    """The model backend, loaded before the first chat needs it."""
    model = create_backend(settings)
    await model.load()
    logger.info("model: %s", model.description)
    return model


def generation_config(settings: Settings) -> GenerationConfig:
    return GenerationConfig(
        node_id=settings.node_id,
        lease_ttl=settings.lease_ttl,
        system_prompt=settings.system_prompt,
        history_turns=settings.history_turns,
        context_tokens=settings.context_tokens,
        max_tokens=settings.max_tokens,
        checkpoint_seconds=settings.resolved_checkpoint_seconds,
    )


async def _open_shared(
    settings: Settings, stack: AsyncExitStack, engine: Engine | None = None
) -> tuple[Engine, ConversationStore]:
    """The engine (``engine``, or the one settings name) and the store, closed by ``stack``."""
    if engine is None:
        engine = build_engine(settings)
    stack.push_async_callback(engine.aclose)
    store = ConversationStore(
        settings.database_url,
        node=settings.node_id,
        record_events=settings.kafka_bootstrap is not None,
    )
    stack.push_async_callback(store.aclose)
    await store.open()
    if settings.kafka_bootstrap is not None:
        # Imported only here: the all-in-one user need not install the kafka extra.
        from chatrelay.events.relay import start_event_relay

        start_event_relay(settings, stack, engine, store)
    return engine, store


def _open_authenticator(settings: Settings, stack: AsyncExitStack) -> Authenticator:
    """The gateway's authenticator, closed by ``stack``."""
    auth = create_authenticator(settings)
    stack.push_async_callback(close_authenticator, auth)
    return auth


async def _open_generations(
    settings: Settings, stack: AsyncExitStack, engine: Engine, store: ConversationStore
) -> Generations:
    """A worker's model, generations and reaper, closed by ``stack`` (generations first)."""
    model = await open_model(settings)
    stack.push_async_callback(model.aclose)
    generations = Generations(engine, store, model, generation_config(settings))
    # The reaper runs on workers only, so the leader is itself a live worker: it
    # continues an orphaned answer here (docs/reliability.md, "Failover").
    policy = FailoverPolicy(settings.failover == "continue", settings.max_continuations)
    reaper = Reaper(engine, store, settings.node_id, policy, generations.continue_answer)
    await reaper.reap_once()  # what a previous run left streaming
    reaper.start()
    stack.push_async_callback(reaper.aclose)
    stack.push_async_callback(generations.aclose)  # interrupts what still runs
    return generations


async def _report_worker(
    settings: Settings,
    stack: AsyncExitStack,
    engine: Engine,
    store: ConversationStore,
    generations: Generations,
    draining: Callable[[], bool],
) -> None:
    """Record this worker in the node registry until ``stack`` closes (``node_status.py``)."""

    async def collect() -> dict[str, Any]:
        return {
            "state": "draining" if draining() else "up",
            "model": generations.model_name,
            "sockets": 0,
            "running": generations.running_count,
            "streaming": generations.streaming(),
        }

    reporter = NodeReporter(
        engine,
        kind="worker",
        node_id=settings.node_id,
        collect=collect,
        store_ping=store.ping,
        chunks=metrics.CHUNKS_PUBLISHED,
        latency=metrics.TIME_TO_FIRST_TOKEN,
        latency_bounds=metrics.TTFT_BUCKETS,
    )
    await stack.enter_async_context(reporter)


def create_all_in_one_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """Gateway and worker in one process (``chatrelay serve``).

    ``engine`` replaces the one ``settings`` name (tests inject faults through
    it); the app closes it when it stops.
    """

    @asynccontextmanager
    async def services() -> AsyncIterator[GatewayServices]:
        async with AsyncExitStack() as stack:
            shared, store = await _open_shared(settings, stack, engine)
            generations = await _open_generations(settings, stack, shared, store)
            async with GatewayServices.running(
                settings,
                engine=shared,
                store=store,
                dispatcher=InProcessDispatcher(
                    generations, settings.node_id, generations.model_name
                ),
                auth=_open_authenticator(settings, stack),
                model=generations.model_name,
                drain_hooks=[generations.wait_idle],
            ) as gateway:
                draining = gateway.connections
                await _report_worker(
                    settings, stack, shared, store, generations, lambda: draining.draining
                )
                yield gateway

    return create_app(services, settings.resolved_max_body_bytes)


def create_gateway_app(settings: Settings) -> FastAPI:
    """A gateway node: sockets and REST here, generations on the workers of ``AI_SERVICE_URLS``."""

    @asynccontextmanager
    async def services() -> AsyncIterator[GatewayServices]:
        async with AsyncExitStack() as stack:
            engine, store = await _open_shared(settings, stack)
            balancer = await stack.enter_async_context(
                HttpBalancer(settings.ai_service_urls, settings.internal_token)
            )
            async with GatewayServices.running(
                settings,
                engine=engine,
                store=store,
                dispatcher=balancer,
                auth=_open_authenticator(settings, stack),
                model="remote",
            ) as gateway:
                yield gateway

    return create_app(services, settings.resolved_max_body_bytes)


def create_worker_app(settings: Settings) -> FastAPI:
    """A worker node: runs generations and publishes them through the engine."""

    @asynccontextmanager
    async def services() -> AsyncIterator[WorkerServices]:
        async with AsyncExitStack() as stack:
            engine, store = await _open_shared(settings, stack)
            generations = await _open_generations(settings, stack, engine, store)
            worker = WorkerServices(
                node_id=settings.node_id,
                engine=engine,
                store=store,
                generations=generations,
                internal_token=settings.internal_token,
                max_message_chars=settings.max_message_chars,
            )
            await _report_worker(
                settings, stack, engine, store, generations, lambda: worker.draining
            )
            yield worker

    return _worker_app(services, settings.resolved_max_body_bytes)
