"""The worker's HTTP API: the seed's ``/chat``, ``/cancel``, ``/history``, ``/health``."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse

from chatrelay.engine.base import Engine
from chatrelay.exceptions import InvalidMessage, Unavailable
from chatrelay.protocol.server_frames import wire_message
from chatrelay.rest import (
    INTERNAL_TOKEN_HEADER,
    CancelAccepted,
    CancelRequest,
    ChatAccepted,
    GenerationRequest,
    HistoryBody,
)
from chatrelay.service_app import create_service_app, error_response, health_response
from chatrelay.store.conversations import ConversationStore
from chatrelay.worker.generation import Generations


@dataclass
class WorkerServices:
    """What a worker process runs on."""

    node_id: str
    engine: Engine
    store: ConversationStore
    generations: Generations
    internal_token: str
    # The gateway's limit, checked again: a worker trusts no caller's body.
    max_message_chars: int
    draining: bool = False

    async def drain(self) -> None:
        """Take no new chats (``/health`` says 503); wait for the running answers to end."""
        self.draining = True
        await self.generations.wait_idle()


WorkerFactory = Callable[[], AbstractAsyncContextManager[WorkerServices]]


def _services(request: Request) -> WorkerServices:
    services: WorkerServices = request.app.state.services
    return services


def _check_token(
    request: Request, token: str | None = Header(None, alias=INTERNAL_TOKEN_HEADER)
) -> None:
    # Bytes, not str: compare_digest raises on a non-ASCII str (a 500 and a traceback).
    expected = _services(request).internal_token.encode()
    given = (token or "").encode("latin-1")  # Starlette decoded the header as latin-1
    if not hmac.compare_digest(given, expected):
        raise _Unauthorized()


class _Unauthorized(Exception):
    pass


def create_worker_app(services_factory: WorkerFactory, max_body_bytes: int) -> FastAPI:
    """The worker app; ``services_factory`` opens and closes what it runs on."""

    app = create_service_app("chatrelay worker", services_factory, max_body_bytes)
    internal = [Depends(_check_token)]

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, exc: _Unauthorized) -> JSONResponse:
        return error_response(401, "not_authenticated", f"missing or wrong {INTERNAL_TOKEN_HEADER}")

    @app.post("/chat", status_code=202, response_model=ChatAccepted, dependencies=internal)
    async def chat(body: GenerationRequest, request: Request) -> ChatAccepted:
        services = _services(request)
        if len(body.message) > services.max_message_chars:
            limit = services.max_message_chars
            raise InvalidMessage(f"the message is longer than {limit} characters")
        if services.draining:
            raise Unavailable("this worker is shutting down")
        return await services.generations.start(body)

    @app.post("/cancel", dependencies=internal)
    async def cancel(body: CancelRequest, request: Request) -> CancelAccepted:
        await _services(request).generations.cancel(body)
        return {"status": "cancelled"}

    @app.get("/history/{session_id}", dependencies=internal, response_model=None)
    async def history(
        session_id: str, request: Request, limit: int = Query(200, ge=1, le=1000)
    ) -> HistoryBody:
        messages = await _services(request).store.history(session_id, limit=limit)
        return {"session_id": session_id, "messages": [wire_message(m) for m in messages]}

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        services = _services(request)
        return await health_response(
            services.engine,
            node=services.node_id,
            role="worker",
            model=services.generations.model_name,
            draining=services.draining,
            running=services.generations.running_count,
            events=services.store.outbox.health(),
        )

    return app
