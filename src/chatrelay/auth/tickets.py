"""One-time WebSocket tickets: how a socket authenticates without a token in its URL.

A client that holds a credential (a Bearer JWT, the accounts cookie, or dev
mode's user) asks ``POST /api/ws-ticket`` for a ticket and connects with
``/ws/chat?ticket=T`` within :data:`TICKET_TTL_SECONDS`. The ticket is stored
in the engine with the principal it stands for, so any gateway can redeem
it, and redeeming deletes it in the same step, so it works once. A leaked
URL is worth nothing after the first connect or half a minute.
"""

from __future__ import annotations

import secrets

import orjson

from chatrelay.auth.base import Principal
from chatrelay.engine.base import Coordination
from chatrelay.exceptions import NotAuthenticated

# Long enough to fetch a ticket and open a socket on a slow link; short enough
# that a ticket seen in a log or a proxy's URL is already spent or expired.
TICKET_TTL_SECONDS = 30
# 32 random bytes: 256 bits, not guessable within a ticket's life.
TICKET_BYTES = 32


async def issue_ticket(coordination: Coordination, principal: Principal) -> str:
    """A new one-time ticket standing for ``principal`` on every gateway."""
    ticket = secrets.token_urlsafe(TICKET_BYTES)
    data = orjson.dumps(
        {
            "user_id": principal.user_id,
            "admin": principal.admin,
            "expires_at": principal.expires_at,
        }
    ).decode()
    await coordination.issue_ticket(ticket, data, TICKET_TTL_SECONDS)
    return ticket


async def redeem_ticket(coordination: Coordination, ticket: str) -> Principal:
    """The principal of ``ticket``, which is spent; ``NotAuthenticated`` if unknown or used."""
    data = await coordination.redeem_ticket(ticket)
    if data is None:
        raise NotAuthenticated("unknown, used or expired ticket")
    fields = orjson.loads(data)
    return Principal(
        user_id=str(fields["user_id"]),
        admin=bool(fields["admin"]),
        expires_at=None if fields["expires_at"] is None else float(fields["expires_at"]),
    )
