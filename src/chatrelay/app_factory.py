"""Wires the parts into runnable apps; the only place gateway and worker meet.

- ``create_all_in_one_app``: ``chatrelay serve``, gateway and worker in one
  process, the worker called in-process;
- ``create_gateway_app``: ``chatrelay gateway``, workers reached over HTTP;
- ``create_worker_app``: ``chatrelay worker``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from chatrelay.config import Settings
from chatrelay.engine import create_engine
from chatrelay.engine.base import Engine
from chatrelay.gateway.app import create_app
from chatrelay.gateway.auth import create_authenticator
from chatrelay.gateway.services import GatewayServices
from chatrelay.gateway.upstream import HttpBalancer, InProcessDispatcher
from chatrelay.llm.base import ModelBackend
from chatrelay.llm.factory import create_backend, describe_backend
from chatrelay.store.conversations import ConversationStore
from chatrelay.worker.app import WorkerServices
from chatrelay.worker.app import create_worker_app as _worker_app
from chatrelay.worker.generation import GenerationConfig, Generations
from chatrelay.worker.reaper import Reaper

logger = logging.getLogger(__name__)


def build_engine(settings: Settings) -> Engine:
    options: dict[str, object] = {
        "max_events": settings.log_max_events,
        "log_ttl": settings.log_ttl_seconds,
    }
    if not settings.resolved_engine_url.startswith("memory:"):
        options["node_id"] = settings.node_id  # names this node's connections in Redis
    return create_engine(settings.resolved_engine_url, **options)


async def open_model(settings: Settings) -> ModelBackend:
    """The model backend, loaded before the first chat needs it."""
    model = create_backend(settings)
    load = getattr(model, "load", None)
    if load is not None:
        await load()
    logger.info("model: %s", describe_backend(model))
    return model


def generation_config(settings: Settings) -> GenerationConfig:
    return GenerationConfig(
        node_id=settings.node_id,
        lease_ttl=settings.lease_ttl,
        system_prompt=settings.system_prompt,
        history_turns=settings.history_turns,
        context_tokens=settings.context_tokens,
        max_tokens=settings.max_tokens,
    )


def create_all_in_one_app(settings: Settings) -> FastAPI:
    """Gateway and worker in one process (``chatrelay serve``)."""

    @asynccontextmanager
    async def services() -> AsyncIterator[GatewayServices]:
        engine = build_engine(settings)
        store = ConversationStore(settings.database_url)
        model = await open_model(settings)
        try:
            await store.open()
            generations = Generations(engine, store, model, generation_config(settings))
            reaper = Reaper(engine, store, settings.node_id)
            await reaper.reap_once()  # what a previous run left streaming
            reaper.start()
            gateway = GatewayServices(
                settings=settings,
                engine=engine,
                store=store,
                dispatcher=InProcessDispatcher(generations, settings.node_id, model.name),
                auth=create_authenticator(settings.auth_mode),
                model=model.name,
            )
            gateway.drain_hooks.append(generations.wait_idle)
            gateway.start()
            try:
                yield gateway
            finally:
                await generations.aclose()
                await reaper.aclose()
                await gateway.aclose()
        finally:
            await model.aclose()
            await store.aclose()
            await engine.aclose()

    return create_app(services)


def create_gateway_app(settings: Settings) -> FastAPI:
    """A gateway node: sockets and REST here, generations on the workers of ``AI_SERVICE_URLS``."""

    @asynccontextmanager
    async def services() -> AsyncIterator[GatewayServices]:
        engine = build_engine(settings)
        store = ConversationStore(settings.database_url)
        balancer = HttpBalancer(settings.ai_service_urls, settings.internal_token)
        try:
            await store.open()
            balancer.start_probing()
            gateway = GatewayServices(
                settings=settings,
                engine=engine,
                store=store,
                dispatcher=balancer,
                auth=create_authenticator(settings.auth_mode),
                model="remote",
            )
            gateway.start()
            try:
                yield gateway
            finally:
                await gateway.aclose()
        finally:
            await balancer.aclose()
            await store.aclose()
            await engine.aclose()

    return create_app(services)


def create_worker_app(settings: Settings) -> FastAPI:
    """A worker node: runs generations and publishes them through the engine."""

    @asynccontextmanager
    async def services() -> AsyncIterator[WorkerServices]:
        engine = build_engine(settings)
        store = ConversationStore(settings.database_url)
        model = await open_model(settings)
        try:
            await store.open()
            generations = Generations(engine, store, model, generation_config(settings))
            reaper = Reaper(engine, store, settings.node_id)
            reaper.start()
            try:
                yield WorkerServices(
                    node_id=settings.node_id,
                    engine=engine,
                    store=store,
                    generations=generations,
                    internal_token=settings.internal_token,
                )
            finally:
                await generations.aclose()
                await reaper.aclose()
        finally:
            await model.aclose()
            await store.aclose()
            await engine.aclose()

    return _worker_app(services)
