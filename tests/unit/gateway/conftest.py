"""A gateway app in this process: memory engine, SQLite in a temp dir, a stand-in worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from chatrelay.auth.dev import DevAuthenticator
from chatrelay.config import Settings
from chatrelay.engine import create_engine
from chatrelay.exceptions import NotFound
from chatrelay.gateway.app import create_app
from chatrelay.gateway.services import GatewayServices
from chatrelay.rest import CancelRequest, ChatAccepted, GenerationRequest
from chatrelay.store.conversations import ConversationStore


@dataclass
class Worker:
    """Accepts every chat (and streams nothing); knows no running generation to cancel."""

    started: list[GenerationRequest] = field(default_factory=list)

    async def start(self, request: GenerationRequest) -> ChatAccepted:
        self.started.append(request)
        return ChatAccepted(message_id=request.message_id, session_id=request.session_id)

    async def cancel(self, request: CancelRequest) -> None:
        raise NotFound(f"no generation {request.message_id} is running")

    def health(self) -> list[dict[str, Any]]:
        return [{"url": "stand-in", "state": "up"}]


def gateway_app(settings: Settings, worker: Worker) -> FastAPI:
    """The gateway's ASGI app on a memory engine, a SQLite store and ``worker``."""

    @asynccontextmanager
    async def services() -> AsyncIterator[GatewayServices]:
        engine = create_engine("memory://")
        async with (
            ConversationStore(settings.database_url) as store,
            GatewayServices.running(
                settings,
                engine=engine,
                store=store,
                dispatcher=worker,
                auth=DevAuthenticator(),
                model="stand-in",
            ) as running,
        ):
            yield running

    return create_app(services, settings.resolved_max_body_bytes)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/chat.db",
        node_id="node-t",
        max_connections_per_user=2,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(gateway_app(settings, Worker())) as running:
        yield running
