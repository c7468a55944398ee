"""Opening a socket: who connects, to which session, whether they may, and the welcome.

``admit`` runs before anything is registered and raises
``HandshakeRefused`` with the close code the client gets (docs/protocol.md);
``welcome`` runs once the socket is registered and attached to its
session's relay.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from starlette.websockets import WebSocket

from chatrelay.auth.base import Principal
from chatrelay.auth.tickets import redeem_ticket
from chatrelay.engine.base import Connection
from chatrelay.exceptions import EngineError, HandshakeRefused, NotAuthenticated
from chatrelay.gateway import close_codes
from chatrelay.gateway.chats import OTHER_USERS_SESSION
from chatrelay.gateway.outbound import Outbound
from chatrelay.gateway.services import GatewayServices
from chatrelay.protocol.client_frames import SESSION_ID_RULE, new_id, valid_session_id
from chatrelay.protocol.server_frames import welcome_frame

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Admission:
    """A socket let in: its connection, its principal, and whether its session is stored
    as its user's (False: nobody owns it yet; its first accepted chat will claim it)."""

    connection: Connection
    principal: Principal
    owned: bool


async def authenticate(websocket: WebSocket, services: GatewayServices) -> Principal:
    """The principal of a socket: its ``ticket=`` (any mode), or dev mode's query.

    Outside ``dev`` mode a socket authenticates only by a one-time ticket
    (``auth/tickets.py``), so no long-lived token travels in a URL. Raises
    ``HandshakeRefused`` (4401; 1013 if the engine cannot be reached).
    """
    ticket = websocket.query_params.get("ticket")
    try:
        if ticket is not None:
            principal = await redeem_ticket(services.engine.coordination, ticket)
        elif services.settings.auth_mode == "dev":
            principal = services.auth.authenticate(websocket)
        else:
            raise NotAuthenticated("connect with ?ticket= from POST /api/ws-ticket")
    except NotAuthenticated as exc:
        raise HandshakeRefused(close_codes.NOT_AUTHENTICATED, exc.detail) from exc
    except EngineError as exc:
        raise HandshakeRefused(close_codes.OVERLOADED, "engine unavailable") from exc
    if principal.expires_at is not None and principal.expires_at <= time.time():
        raise HandshakeRefused(close_codes.NOT_AUTHENTICATED, "the token has expired")
    return principal


async def admit(websocket: WebSocket, services: GatewayServices) -> Admission:
    """The connection an accepted socket asks for, or ``HandshakeRefused``.

    Checks, in order: the node is not draining, the caller is authenticated,
    the session id is well formed (a new one is made when none is given),
    and the session is not someone else's (administrators may watch any;
    asked of ``owners.py``: a cache, or one store query per batch of
    sockets). The user's socket limit is held by ``connections.open``, which
    counts and registers in one step. Stores nothing: a session is stored by
    its first accepted chat.
    """
    connections = services.connections
    connections.refuse_if_draining()
    principal = await authenticate(websocket, services)
    user_id = principal.user_id
    asked = websocket.query_params.get("session_id")
    # A session id made here is new: nobody owns it, and the store need not be asked.
    session_id = asked or new_id()
    if not valid_session_id(session_id):
        raise HandshakeRefused(close_codes.BAD_SESSION, f"session_id must be {SESSION_ID_RULE}")
    owned = False
    if asked:
        try:
            owner = await services.owners.owner(session_id)
        except Exception as exc:
            logger.warning("session owner lookup failed: %s", type(exc).__name__)
            raise HandshakeRefused(close_codes.OVERLOADED, "store unavailable") from exc
        if owner is not None and owner != user_id and not principal.admin:
            raise HandshakeRefused(close_codes.FORBIDDEN, OTHER_USERS_SESSION)
        owned = owner is not None
    connection = Connection(uuid.uuid4().hex, session_id, user_id, services.node_id)
    return Admission(connection, principal, owned)


def welcome(
    services: GatewayServices,
    connection: Connection,
    outbound: Outbound,
    epoch: str,
    latest: int,
    *,
    owned: bool,
) -> None:
    """Queue the welcome with the log's position, then release the live events held meanwhile.

    Call it with ``outbound`` held from before the relay attach, and the
    position the attach yielded, so no event published in between is lost
    or sent twice. A socket on a session nobody owns yet (``owned=False``)
    stays held: its reader releases it once the session is found to be its
    user's.
    """
    session_id = connection.session_id
    outbound.send_frame(
        welcome_frame(services.node_id, session_id, connection.user_id, epoch, latest)
    )
    outbound.start_at(latest)
    if owned:
        outbound.release()
