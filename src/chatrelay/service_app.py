"""The FastAPI shell every chatrelay service shares: lifespan, error bodies, metrics.

A gateway and a worker each build their routes on top of it; neither knows
the other. The shell opens the service's parts for the app's lifetime
(``app.state.services``), hands ``serving.py`` their ``drain``, turns
chatrelay's errors and invalid bodies into ``{"code", "detail"}`` answers,
runs the request guards (a request id and error boundary, the body limit:
``request_guards.py``) and serves ``/metrics``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from chatrelay import __version__, metrics
from chatrelay.engine.base import Engine
from chatrelay.exceptions import ChatRelayError, RateLimited
from chatrelay.request_guards import BodyLimit, RequestIds
from chatrelay.security_headers import SecurityHeaders


class Drainable(Protocol):
    async def drain(self) -> None:
        """Stop taking work and let what runs finish (``serving.py`` calls it on SIGTERM)."""
        ...


ServicesT = TypeVar("ServicesT", bound=Drainable)
# The ``code`` of the errors Starlette raises before a route runs.
HTTP_ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The body every chatrelay error has on REST: ``{"code", "detail"}``."""
    metrics.ERRORS.labels(code).inc()
    return JSONResponse({"code": code, "detail": detail}, status_code=status, headers=headers)


async def health_response(
    engine: Engine,
    *,
    node: str,
    role: str,
    model: str,
    draining: bool,
    events: str = "off",
    **extra: object,
) -> JSONResponse:
    """``/health`` of a node: ok, degraded (engine down) or draining (503).

    ``events`` is the event log's state (docs/events.md): off, ok or degraded;
    a degraded event log does not degrade the node, whose chats are unaffected.
    """
    engine_ok = await engine.ping()
    body: dict[str, object] = {
        "status": "draining" if draining else ("ok" if engine_ok else "degraded"),
        "node": node,
        "role": role,
        "model": model,
        "engine": "up" if engine_ok else "down",
        "events": events,
        **extra,
        "version": __version__,
    }
    return JSONResponse(body, status_code=503 if draining else 200)


class ServiceApp(FastAPI):
    """A FastAPI app with WebSocket fast paths: ``socket_routes`` maps a path to an ASGI
    app that takes that path's WebSockets before the HTTP middleware stack does.

    A socket lives as long as its connection, and every layer it passes through
    keeps a coroutine frame alive and wraps every frame it sends: the gateway's
    chat socket needs only its request id and the Origin check, which its
    route's app applies itself (``gateway/app.py``).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.socket_routes: dict[str, ASGIApp] = {}

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        routes = self.socket_routes
        if not routes:
            return stack

        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            route = routes.get(scope["path"]) if scope["type"] == "websocket" else None
            await (route or stack)(scope, receive, send)

        return dispatch


def create_service_app(
    title: str,
    services_factory: Callable[[], AbstractAsyncContextManager[ServicesT]],
    max_body_bytes: int,
) -> ServiceApp:
    """An app whose lifespan runs ``services_factory``, with the shared handlers and /metrics.

    Request bodies over ``max_body_bytes`` are refused with 413 before they are read.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with services_factory() as services:
            app.state.services = services
            app.state.drain = services.drain
            yield

    # No CDN-loaded /docs or /redoc: the gateway serves its own docs page (gateway/api_docs.py).
    app = ServiceApp(
        title=title, version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    # The last added runs first: the request id is set before the body is counted,
    # and every answer, a 413 included, gets the security headers.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(RequestIds)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(ChatRelayError)
    async def chatrelay_error(request: Request, exc: ChatRelayError) -> JSONResponse:
        headers = None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(int(exc.retry_after))}
        return error_response(exc.http_status, exc.code, exc.detail, headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's own answers (unknown route, wrong method, a body that is not text).
        code = HTTP_ERROR_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:]) or 'body'}: {error['msg']}"
            for error in exc.errors()
        )
        return error_response(422, "invalid_message", problems or "invalid request")

    @app.get("/metrics", include_in_schema=False)
    async def get_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return app
