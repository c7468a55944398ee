"""Security headers on every HTTP answer of every role (docs/security.md, "Headers").

A pure ASGI middleware: it adds the headers to the start of each HTTP
response, whatever route, error handler or static file produced it, and
leaves WebSocket traffic alone. The Content-Security-Policy is the one the
built web UI and the ``/docs`` page pass: every script, style, image and
connection from this origin only, no inline script, never framed.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Same-origin sockets are named explicitly too: 'self' covers ws:/wss: to this host
# in CSP Level 3 browsers, older ones need the scheme and host spelled out.
_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; connect-src 'self'"
)
# A Host header that can go into the policy as it is (no ';', space or quote to
# smuggle a directive in); any other gets 'self' alone.
_PLAIN_HOST = re.compile(
    r"^[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$"
)
FIXED_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


def content_security_policy(host: str | None) -> str:
    """The policy for a request to ``host`` (its Host header, if any)."""
    if host is None or not _PLAIN_HOST.match(host):
        return _POLICY
    return f"{_POLICY} ws://{host} wss://{host}"


class SecurityHeaders:
    """ASGI middleware: the CSP, frame, sniffing and referrer headers on every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next((value for name, value in scope["headers"] if name == b"host"), None)
        csp = content_security_policy(host.decode("latin-1") if host is not None else None)
        added = [(b"content-security-policy", csp.encode("latin-1")), *FIXED_HEADERS]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in added if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
