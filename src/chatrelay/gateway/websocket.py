"""One browser socket, from accept to close: the glue of its parts.

``handshake.py`` admits and welcomes it, ``connections.py`` keeps it
registered, ``relay.py`` feeds its session's events into its
``outbound.py`` queue, and ``inbound.py`` reads what the client sends. The
socket runs two tasks, the reader and the writer, and ends when the first
of them does (the client left, the writer sent a ``reconnect``, or the
client read too slowly: the outbound queue stopped the writer) or its
credential's deadline timer fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from chatrelay.exceptions import EngineError, HandshakeRefused, TokenExpired
from chatrelay.gateway import close_codes, handshake
from chatrelay.gateway.asgi_send import TextSender
from chatrelay.gateway.coalesce import coalescing_asked
from chatrelay.gateway.credentials import SocketCredential
from chatrelay.gateway.inbound import Inbound
from chatrelay.gateway.outbound import Outbound
from chatrelay.gateway.services import GatewayServices
from chatrelay.gateway.snapshots import Snapshots
from chatrelay.gateway.throttle import FrameThrottle
from chatrelay.protocol.server_frames import error_frame

logger = logging.getLogger(__name__)

# A socket told to end (a flood, an expired token: the error saying so) gets this long
# for its queued frames to leave before it is closed anyway.
FLUSH_SECONDS = 5.0


async def serve_socket(websocket: WebSocket, services: GatewayServices) -> None:
    """Serve one WebSocket of ``/ws/chat`` until it closes."""
    await websocket.accept()
    try:
        admission = await handshake.admit(websocket, services)
        coalesce = coalescing_asked(websocket.query_params)
    except HandshakeRefused as refused:
        await websocket.close(refused.code, refused.reason)
        return
    connection = admission.connection
    fields = {
        "node": services.node_id,
        "session_id": connection.session_id,
        "user_id": connection.user_id,
    }
    settings = services.settings
    outbound = Outbound(
        settings.send_queue_size,
        coalesce_limit=settings.resolved_max_frame_bytes if coalesce else 0,
    )
    try:
        async with (
            services.connections.open(connection, outbound),
            _attached(services, admission, outbound),
        ):
            logger.info("WebSocket connected", extra=fields)
            code, reason = await _run(websocket, services, admission, outbound)
    except HandshakeRefused as refused:
        code, reason = refused.code, refused.reason
    except EngineError as exc:
        code, reason = close_codes.OVERLOADED, f"engine unavailable: {exc.detail}"[:120]
    logger.info("WebSocket disconnected", extra={**fields, "code": code})
    if websocket.application_state != WebSocketState.DISCONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(code, reason)


@contextlib.asynccontextmanager
async def _attached(
    services: GatewayServices, admission: handshake.Admission, outbound: Outbound
) -> AsyncIterator[None]:
    """Attach ``outbound`` to its session's relay and welcome it, holding live events meanwhile."""
    outbound.hold()
    connection = admission.connection
    async with services.relay.attach(connection.session_id, outbound) as (epoch, latest):
        handshake.welcome(services, connection, outbound, epoch, latest, owned=admission.owned)
        yield


@contextlib.contextmanager
def _interrupted_by(*futures: asyncio.Future[Any]) -> Iterator[None]:
    """Cancel this task's work inside the block when any of ``futures`` completes first;
    the block then ends quietly. A cancel from anyone else still propagates."""
    task = asyncio.current_task()
    assert task is not None
    inside, interrupted = True, False

    def interrupt(_: object) -> None:
        nonlocal interrupted
        # A callback scheduled just before the block ended must not cancel what follows.
        if inside and not interrupted:
            interrupted = True
            task.cancel()

    for future in futures:
        future.add_done_callback(interrupt)
    try:
        yield
    except asyncio.CancelledError:
        if not interrupted or task.uncancel() > 0:
            raise
    finally:
        inside = False
        for future in futures:
            future.remove_done_callback(interrupt)


async def _run(
    websocket: WebSocket,
    services: GatewayServices,
    admission: handshake.Admission,
    outbound: Outbound,
) -> tuple[int, str]:
    """Read and write until either side ends, or the credential expires; the close code."""
    settings, connection = services.settings, admission.connection
    throttle = FrameThrottle(
        burst=settings.frame_rate_burst,
        per_second=settings.frame_rate_per_second,
        flood_limit=settings.frame_flood_limit,
        flood_window=settings.frame_flood_window_seconds,
    )
    credential = SocketCredential(admission.principal, services.engine.coordination)
    inbound = Inbound(
        credential=credential,
        session_id=connection.session_id,
        conversations=services.conversations,
        snapshots=Snapshots(
            services.relay,
            services.store.checkpoint,
            settings.resolved_max_frame_bytes,
            settings.snapshot_min_chunks,
        ),
        outbound=outbound,
        throttle=throttle,
        max_message_chars=settings.max_message_chars,
        max_frame_bytes=settings.resolved_max_frame_bytes,
        owned=admission.owned,
    )
    writer = asyncio.create_task(outbound.write(TextSender(websocket).send_text))
    expiry = credential.expired  # a future a timer completes, not a task
    # The claim watch does not end the socket by itself: it only releases the
    # outbound, or closes it (the writer then ends).
    if not admission.owned:
        inbound.watch_claim()
    try:
        # Read in this task, not one of its own (one task less per socket): the
        # writer ending or the credential expiring interrupts the read.
        with _interrupted_by(writer, expiry):
            await inbound.read(websocket.receive)
        if expiry.done() and not writer.done():
            expired = TokenExpired("the token expired and was not refreshed")
            outbound.send_frame(error_frame(expired.code, expired.detail))
            outbound.close_with(close_codes.NOT_AUTHENTICATED, "token expired")
        if outbound.ending and not writer.done():
            # What is queued goes out first (a flood's refusals, the expiry's error):
            # the writer ends after it.
            await asyncio.wait((writer,), timeout=FLUSH_SECONDS)
    finally:
        credential.close()
        writer.cancel()
        # The client may be gone: a send or receive error only ends the socket.
        await asyncio.gather(writer, inbound.stop(), return_exceptions=True)
    return outbound.close_reason
