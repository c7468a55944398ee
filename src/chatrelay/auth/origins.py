"""Origin checks: a browser page of another site may not act with this site's credentials.

Browsers send ``Origin`` on WebSocket upgrades and on cross-site writes, and
they send this site's cookies with them. So, before anything else runs, a
WebSocket upgrade, or a state-changing request (POST, PUT, PATCH, DELETE)
carrying cookies, is refused with 403 when its ``Origin`` is neither the
server's own origin nor one of ``CHATRELAY_ALLOWED_ORIGINS`` (cross-site
WebSocket hijacking, CSRF). A request without ``Origin`` comes from a
non-browser client and is judged by its credentials alone; so is a request
without cookies, whose Bearer token a foreign page cannot have.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
_HTTP_SCHEMES = {"ws": "http", "wss": "https"}


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` lower-cased, without a default port or a trailing slash."""
    origin = origin.strip().rstrip("/").lower()
    scheme, _, host = origin.partition("://")
    return f"{scheme}://{host.removesuffix(_DEFAULT_PORTS.get(scheme, '!'))}"


def own_origin(connection: HTTPConnection) -> str:
    """The origin the request was made to: ``X-Forwarded-Proto`` (behind a proxy) and ``Host``."""
    headers = connection.headers
    forwarded = headers.get("x-forwarded-proto", "").split(",")[0].strip()
    scheme = forwarded or _HTTP_SCHEMES.get(connection.url.scheme, connection.url.scheme)
    host = headers.get("host") or connection.url.netloc
    return normalize_origin(f"{scheme}://{host}")


def origin_allowed(connection: HTTPConnection, allowed: Iterable[str]) -> bool:
    """Whether the request's ``Origin`` (if any) is the server's own or an allowed one."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    origin = normalize_origin(origin)
    return origin == own_origin(connection) or origin in {normalize_origin(o) for o in allowed}


def needs_origin_check(connection: HTTPConnection) -> bool:
    """A WebSocket upgrade, or a state-changing request carrying cookies."""
    if connection.scope["type"] == "websocket":
        return True
    return connection.scope["method"] in STATE_CHANGING_METHODS and "cookie" in connection.headers


class OriginGuard:
    """ASGI middleware refusing foreign origins (403) before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            connection = HTTPConnection(scope)
            if needs_origin_check(connection) and not origin_allowed(
                connection, _allowed_origins(scope)
            ):
                await _refuse(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _allowed_origins(scope: Scope) -> list[str]:
    # The settings live with the running services (set by the app's lifespan).
    services = getattr(scope["app"].state, "services", None)
    return [] if services is None else list(services.settings.allowed_origins)


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    detail = "this origin may not use this server (CHATRELAY_ALLOWED_ORIGINS)"
    if scope["type"] == "websocket":
        # Closed before it is accepted: the server answers the upgrade with 403.
        await WebSocket(scope, receive, send).close(reason=detail)
        return
    response = JSONResponse({"code": "forbidden", "detail": detail}, status_code=403)
    await response(scope, receive, send)
