"""Opening a socket: who connects, to which session, whether they may, and the welcome.

``admit`` runs before anything is registered and raises
``HandshakeRefused`` with the close code the client gets (docs/protocol.md);
``welcome`` runs once the socket is registered and attached to its
session's relay.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from starlette.websockets import WebSocket

from chatrelay.engine.base import Connection
from chatrelay.exceptions import EngineError, Forbidden, HandshakeRefused, NotAuthenticated
from chatrelay.gateway import close_codes
from chatrelay.gateway.outbound import Outbound
from chatrelay.gateway.services import GatewayServices
from chatrelay.protocol import SESSION_ID_RULE, new_id, valid_session_id, welcome_frame


@dataclass(frozen=True, slots=True)
class Admission:
    """A socket let in: its connection, and whether its session is stored as its user's
    (False: nobody owns it yet; its first accepted chat will claim it)."""

    connection: Connection
    owned: bool


async def admit(websocket: WebSocket, services: GatewayServices) -> Admission:
    """The connection an accepted socket asks for, or ``HandshakeRefused``.

    Checks, in order: the node is not draining, the user is authenticated,
    the session id is well formed (a new one is made when none is given),
    the user is under their socket limit (a first look: ``connections.open``
    holds the limit, counting and registering in one step), and the session
    is not someone else's. Stores nothing: a session is stored by its first accepted chat.
    """
    connections = services.connections
    connections.refuse_if_draining()
    query = websocket.query_params
    try:
        user_id = services.auth.authenticate(websocket).user_id
    except NotAuthenticated as exc:
        raise HandshakeRefused(close_codes.NOT_AUTHENTICATED, exc.detail) from exc
    session_id = query.get("session_id") or new_id()
    if not valid_session_id(session_id):
        raise HandshakeRefused(close_codes.BAD_SESSION, f"session_id must be {SESSION_ID_RULE}")
    await connections.admit(user_id)
    try:
        owned = await services.conversations.check_owner(user_id, session_id)
    except Forbidden as exc:
        raise HandshakeRefused(close_codes.FORBIDDEN, exc.detail) from exc
    except EngineError as exc:
        raise HandshakeRefused(close_codes.OVERLOADED, "engine unavailable") from exc
    connection = Connection(uuid.uuid4().hex, session_id, user_id, services.node_id)
    return Admission(connection, owned)


async def welcome(
    services: GatewayServices, connection: Connection, outbound: Outbound, *, owned: bool
) -> None:
    """Queue the welcome with the log's position, then release the live events held meanwhile.

    Call it with ``outbound`` held from before the relay attach, so no event
    published in between is lost or sent twice. A socket on a session nobody
    owns yet (``owned=False``) stays held: its reader releases it once the
    session is found to be its user's. Raises ``EngineError``.
    """
    session_id = connection.session_id
    epoch, latest = await services.relay.position(session_id)
    outbound.send_frame(
        welcome_frame(services.node_id, session_id, connection.user_id, epoch, latest)
    )
    outbound.start_at(latest)
    if owned:
        outbound.release()
