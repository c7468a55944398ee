"""The gateway's ASGI app: the WebSocket endpoint, the REST API, the web UI."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path as FilePath
from typing import Any

from fastapi import FastAPI, Path, Query, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from chatrelay.auth.base import Principal
from chatrelay.auth.origins import OriginGuard
from chatrelay.auth.routes import router as auth_router
from chatrelay.gateway import access_routes, admin_routes, session_routes
from chatrelay.gateway.api_docs import mount_api_docs
from chatrelay.gateway.services import GatewayServices
from chatrelay.gateway.websocket import serve_socket
from chatrelay.protocol.client_frames import MAX_ID_CHARS, SESSION_ID_PATTERN
from chatrelay.request_guards import RequestIds
from chatrelay.rest import (
    CancelAccepted,
    CancelBody,
    ChatAccepted,
    ChatBody,
    HistoryBody,
    error_responses,
)
from chatrelay.service_app import ServiceApp, create_service_app, error_response, health_response

STATIC_DIR = FilePath(__file__).parent / "static"
CHAT_SOCKET_PATH = "/ws/chat"
# The web UI's catch-all route: every GET no other route takes.
WEB_UI_PATH = "/{path:path}"
# The methods a wrong-method answer (405) may list in its ``Allow``.
HTTP_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")
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


def create_app(services_factory: ServicesFactory, max_body_bytes: int) -> ServiceApp:
    """The gateway app; ``services_factory`` opens and closes what it runs on."""
    app = create_service_app("chatrelay", services_factory, max_body_bytes)
    app.include_router(auth_router)
    access_routes.install(app)
    app.include_router(session_routes.router)
    app.include_router(admin_routes.router)

    async def chat_socket(scope: Scope, receive: Receive, send: Send) -> None:
        await serve_socket(WebSocket(scope, receive, send), scope["app"].state.services)

    # The chat socket skips the HTTP middleware stack and the router: FastAPI's
    # WebSocket route solved dependencies it has none of (a Response built and its
    # headers edited per socket), every REST route was matched before it, and each
    # layer wrapped every frame sent (docs/benchmarks.md). It keeps its request id
    # and the Origin check.
    app.socket_routes[CHAT_SOCKET_PATH] = RequestIds(OriginGuard(chat_socket))

    @app.post(
        "/api/chat",
        status_code=202,
        response_model=ChatAccepted,
        responses=error_responses(400, 401, 403, 409, 413, 422, 429, 503),
    )
    async def post_chat(body: ChatBody, request: Request) -> ChatAccepted:
        conversations = _services(request).conversations
        return await conversations.send(_principal(request), body.session_id, body.message)

    @app.post("/api/cancel", responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503))
    async def post_cancel(body: CancelBody, request: Request) -> CancelAccepted:
        await _services(request).conversations.cancel(
            _principal(request), body.session_id, body.message_id
        )
        return {"status": "cancelled"}

    # response_model=None: the bodies are built from typed records; validating
    # up to 1,000 messages again on the way out would only cost time.
    @app.get(
        "/api/history/{session_id}",
        response_model=None,
        responses=error_responses(401, 403, 422, 503),
    )
    async def get_history(
        request: Request,
        session_id: str = Path(pattern=SESSION_ID_PATTERN.pattern, max_length=MAX_ID_CHARS),
        limit: int = Query(200, ge=1, le=1000),
        before: str | None = Query(None, max_length=MAX_ID_CHARS),
    ) -> HistoryBody:
        messages = await _services(request).conversations.history(
            _principal(request), session_id, limit=limit, before=before
        )
        return {"session_id": session_id, "messages": messages}

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
            events=services.store.outbox.health(),
        )

    draining: dict[int | str, dict[str, Any]] = {
        503: {"description": "The node is draining: connect to another one."}
    }
    app.add_api_route("/health", health, methods=["GET"], responses=draining)
    app.add_api_route("/actuator/health", health, methods=["GET"], responses=draining)
    mount_api_docs(app, STATIC_DIR)
    _list_every_method_on_405(app)
    _mount_web_ui(app)  # last: its catch-all route answers every other path
    return app


def _methods_of(app: FastAPI, path: str) -> set[str]:
    """The methods some API route takes on ``path`` (the web UI's catch-all left out)."""
    return {
        method
        for method in HTTP_METHODS
        for route in app.router.routes
        if getattr(route, "path", None) != WEB_UI_PATH
        and route.matches({"type": "http", "path": path, "method": method, "root_path": ""})[0]
        is Match.FULL
    }


def _list_every_method_on_405(app: FastAPI) -> None:
    """Starlette's 405 lists the methods of the first route of the path only; a path with
    routes for several methods (``PATCH`` and ``DELETE /api/sessions/{id}``) lists them all."""
    answer = app.exception_handlers[HTTPException]

    async def wrong_method(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            allow = ", ".join(sorted(_methods_of(app, request.url.path)))
            exc = HTTPException(405, exc.detail, headers={"Allow": allow})
        response: Response = await answer(request, exc)  # type: ignore[misc]
        return response

    app.add_exception_handler(HTTPException, wrong_method)


def _mount_web_ui(app: FastAPI) -> None:
    index, admin = STATIC_DIR / "index.html", STATIC_DIR / "admin.html"
    if (STATIC_DIR / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=STATIC_DIR / "assets"), name="assets")

    @app.get(WEB_UI_PATH, include_in_schema=False)
    async def web_ui(path: str) -> Response:
        if path.startswith(("api/", "ws/")):
            allowed = _methods_of(app, f"/{path}")
            if allowed:
                allow = {"Allow": ", ".join(sorted(allowed))}
                return error_response(405, "method_not_allowed", "method not allowed", allow)
            return error_response(404, "not_found", f"no route /{path}")
        if path.rstrip("/") == "admin" and admin.is_file():
            return FileResponse(admin)  # the cluster view, a page of its own (web/admin.html)
        candidate = (STATIC_DIR / path).resolve()
        if path and candidate.is_file() and STATIC_DIR.resolve() in candidate.parents:
            return FileResponse(candidate)
        if index.is_file():
            return FileResponse(index)
        return HTMLResponse(NOT_BUILT_PAGE)
