"""Wires the parts into runnable apps; the only place gateway and worker meet.

``create_all_in_one_app`` is what ``chatrelay serve`` runs: gateway and
worker in one process, the worker called in-process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from chatrelay.config import Settings
from chatrelay.engine import create_engine
from chatrelay.engine.base import Engine
from chatrelay.gateway.app import create_app
from chatrelay.gateway.auth import create_authenticator
from chatrelay.gateway.services import GatewayServices
from chatrelay.gateway.upstream import InProcessDispatcher
from chatrelay.llm.factory import create_backend
from chatrelay.store.conversations import ConversationStore
from chatrelay.worker.generation import GenerationConfig, Generations


def build_engine(settings: Settings) -> Engine:
    return create_engine(
        settings.resolved_engine_url,
        max_events=settings.log_max_events,
        log_ttl=settings.log_ttl_seconds,
    )


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
        model = create_backend(settings)
        try:
            await store.open()
            generations = Generations(engine, store, model, generation_config(settings))
            if settings.resolved_engine_url.startswith("memory:"):
                # One process owns every generation: what is still streaming died with it.
                await generations.interrupt_orphans()
            gateway = GatewayServices(
                settings=settings,
                engine=engine,
                store=store,
                dispatcher=InProcessDispatcher(generations, settings.node_id, model.name),
                auth=create_authenticator(settings.auth_mode),
                model=model.name,
            )
            gateway.start()
            try:
                yield gateway
            finally:
                await generations.aclose()
                await gateway.aclose()
        finally:
            await model.aclose()
            await store.aclose()
            await engine.aclose()

    return create_app(services)
