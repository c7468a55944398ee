"""Runs an ASGI app with uvicorn, draining it before exit on SIGTERM or Ctrl-C.

The first signal starts the app's ``drain`` (``app.state.drain``, set by its
lifespan): a gateway tells its sockets to reconnect elsewhere and closes them
with 1012; a worker stops taking chats and lets running answers finish. After
the drain, or the grace period, uvicorn shuts down as usual. A second signal
exits at once.

Every listener is bounded (docs/operations.md, "Limits"): a connection must
send its request headers within ``header_timeout_seconds`` (uvicorn alone only
times out idle keep-alive connections, so a client sending half a header held
its socket forever), at most ``max_concurrency`` connections and requests are
served at once (503 past it), and WebSocket frames are capped at the derived
frame limit (plus a slack, see ``FRAME_SLACK_BYTES``).
"""

from __future__ import annotations

import asyncio
import logging
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chatrelay.config import Settings

logger = logging.getLogger(__name__)

# uvicorn's own frame cap sits this far above the gateway's limit: a frame between the
# two is read whole and refused by the app with a clean 1009 close handshake; past
# uvicorn's cap the connection is cut mid-frame and the client may see a reset (1006).
FRAME_SLACK_BYTES = 256 * 1024

# What a WebSocket handshake over the concurrency limit is answered (as uvicorn answers requests).
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 19\r\nconnection: close\r\n\r\nService Unavailable"
)


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a header timeout and the concurrency limit on sockets too.

    The header clock starts when the connection opens and when a request's
    first byte arrives, and stops once its headers are complete (a WebSocket
    handshake's too); a connection still without them is closed. Between
    requests uvicorn's keep-alive timeout rules. uvicorn refuses plain requests
    past ``limit_concurrency`` with 503 but lets WebSocket handshakes through:
    they are refused the same way here, since a socket holds its place longest.
    """

    header_timeout: float = 10.0  # set per server by ``bounded_http_protocol``
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) >= limit:
            self.transport.write(_BUSY_RESPONSE)
            self.transport.close()
            return
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def bounded_http_protocol(timeout: float) -> type[BoundedHttpProtocol]:
    """A ``BoundedHttpProtocol`` class with its timeout (uvicorn makes one per connection)."""

    class Bounded(BoundedHttpProtocol):
        header_timeout = timeout

    return Bounded


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first exit signal drains the app first."""

    def __init__(
        self, config: uvicorn.Config, app: FastAPI, grace: float, stop_listening: bool
    ) -> None:
        super().__init__(config)
        self._app = app
        self._grace = grace
        self._stop_listening = stop_listening
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drain = getattr(self._app.state, "drain", None)
        if self._drain_task is not None or drain is None or not self.started:
            super().handle_exit(sig, frame)
            return
        loop = asyncio.get_event_loop()
        self._drain_task = loop.create_task(self._drain_then_exit(sig, frame))

    async def _drain_then_exit(self, sig: int, frame: FrameType | None) -> None:
        logger.info("draining (grace %.1f s)", self._grace)
        if self._stop_listening:
            # Reconnecting clients must land on another node, not on this one again.
            for server in self.servers:
                server.close()
        try:
            async with asyncio.timeout(self._grace):
                await self._app.state.drain()
        except TimeoutError:
            logger.warning("drain did not finish within %.1f s; stopping anyway", self._grace)
        except Exception:
            logger.exception("drain failed; stopping anyway")
        super().handle_exit(sig, frame)


def run(app: FastAPI, settings: Settings, *, stop_listening_on_drain: bool = True) -> None:
    """Serve ``app`` on the settings' host and port until a signal ends it.

    ``stop_listening_on_drain``: close the listening socket when the drain
    starts (gateways); a worker keeps listening so ``/health`` can say 503.
    """
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        http=bounded_http_protocol(settings.header_timeout_seconds),
        timeout_keep_alive=max(1, round(settings.keep_alive_seconds)),
        limit_concurrency=settings.max_concurrency,
        backlog=settings.listen_backlog,
        ws_max_size=settings.resolved_max_frame_bytes + FRAME_SLACK_BYTES,
        ws_ping_interval=settings.ping_interval,
        ws_ping_timeout=settings.ping_interval,
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=max(1, int(settings.drain_grace_seconds)),
    )
    DrainingServer(config, app, settings.drain_grace_seconds, stop_listening_on_drain).run()
