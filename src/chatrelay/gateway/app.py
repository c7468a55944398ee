"""The gateway's ASGI app: the WebSocket endpoint, the REST API, the web UI."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from chatrelay.auth.base import Principal
from chatrelay.auth.routes import router as auth_router
from chatrelay.gateway import access_routes
from chatrelay.gateway.services import GatewayServices
from chatrelay.gateway.websocket import serve_socket
from chatrelay.protocol import SESSION_ID_PATTERN
from chatrelay.rest import (
    CancelAccepted,
    CancelBody,
    ChatAccepted,
    ChatBody,
    HistoryBody,
    SessionsBody,
)
from chatrelay.service_app import create_service_app, error_response, health_response

STATIC_DIR = Path(__file__).parent / "static"
NOT_BUILT_PAGE = """<!doctype html><meta charset="utf-8"><title>chatrelay</title>
<h1>chatrelay is running</h1>
<p>The web UI is not built in this install: run <code>make web</code> (needs Node.js),
or talk to <code>/ws/chat</code> with any WebSocket client. API docs: <a href="/docs">/docs</a>.</p>
"""

ServicesFactory = Callable[[], AbstractAsyncContextManager[GatewayServices]]


def _services(request: Request) -> GatewayServices:
    services: GatewayServices = request.app.state.services
    return services


def _principal(request: Request) -> Principal:
    return _services(request).auth.authenticate(request)


def create_app(services_factory: ServicesFactory, max_body_bytes: int) -> FastAPI:
    """The gateway app; ``services_factory`` opens and closes what it runs on."""
    app = create_service_app("chatrelay", services_factory, max_body_bytes)
    app.include_router(auth_router)
    access_routes.install(app)

    @app.websocket("/ws/chat")
    async def chat_socket(websocket: WebSocket) -> None:
        await serve_socket(websocket, websocket.app.state.services)

    @app.post("/api/chat", status_code=202, response_model=ChatAccepted)
    async def post_chat(body: ChatBody, request: Request) -> ChatAccepted:
        conversations = _services(request).conversations
        return await conversations.send(_principal(request), body.session_id, body.message)

    @app.post("/api/cancel")
    async def post_cancel(body: CancelBody, request: Request) -> CancelAccepted:
        await _services(request).conversations.cancel(
            _principal(request), body.session_id, body.message_id
        )
        return {"status": "cancelled"}

    # response_model=None: the bodies are built from typed records; validating
    # up to 1,000 messages again on the way out would only cost time.
    @app.get("/api/history/{session_id}", response_model=None)
    async def get_history(
        request: Request,
        session_id: str,
        limit: int = Query(200, ge=1, le=1000),
        before: str | None = Query(None, max_length=128),
    ) -> HistoryBody | JSONResponse:
        if not SESSION_ID_PATTERN.match(session_id):
            return error_response(422, "invalid_message", "invalid session id")
        messages = await _services(request).conversations.history(
            _principal(request), session_id, limit=limit, before=before
        )
        return {"session_id": session_id, "messages": messages}

    @app.get("/api/sessions", response_model=None)
    async def get_sessions(request: Request) -> SessionsBody:
        return {"sessions": await _services(request).conversations.sessions(_principal(request))}

    @app.get("/api/health")
    async def api_health(request: Request) -> dict[str, Any]:
        # Counts only: worker URLs and their errors are for operators (logs, metrics).
        services = _services(request)
        workers = services.dispatcher.health()
        healthy = sum(1 for worker in workers if worker["state"] == "up")
        return {"node": services.node_id, "workers": {"healthy": healthy, "total": len(workers)}}

    async def health(request: Request) -> JSONResponse:
        services = _services(request)
        return await health_response(
            services.engine,
            node=services.node_id,
            role="gateway",
            model=services.model,
            draining=services.connections.draining,
            connections=services.connections.count,
        )

    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/actuator/health", health, methods=["GET"])
    _mount_web_ui(app)
    return app


def _mount_web_ui(app: FastAPI) -> None:
    index = STATIC_DIR / "index.html"
    if (STATIC_DIR / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=STATIC_DIR / "assets"), name="assets")

    @app.get("/{path:path}", include_in_schema=False)
    async def web_ui(path: str) -> Response:
        if path.startswith(("api/", "ws/")):
            return error_response(404, "not_found", f"no route /{path}")
        candidate = (STATIC_DIR / path).resolve()
        if path and candidate.is_file() and STATIC_DIR.resolve() in candidate.parents:
            return FileResponse(candidate)
        if index.is_file():
            return FileResponse(index)
        return HTMLResponse(NOT_BUILT_PAGE)
