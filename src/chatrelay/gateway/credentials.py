"""A socket's credential: who it runs as, until when, and its refresh by a new ticket.

A principal with an ``expires_at`` (a JWT's ``exp``) stops being valid then;
the socket's :meth:`SocketCredential.expired` returns at that moment and the
socket ends with an ``error`` frame ``token_expired`` and close 4401, unless
a ``refresh`` frame brought a new ticket of the same user first, which moves
the deadline to the new credential's.
"""

from __future__ import annotations

import asyncio
import time

from chatrelay.auth.base import Principal
from chatrelay.auth.tickets import redeem_ticket
from chatrelay.engine.base import Coordination
from chatrelay.exceptions import NotAuthenticated


class SocketCredential:
    """The principal of one socket; replaced by ``refresh``, watched by ``expired``."""

    def __init__(self, principal: Principal, coordination: Coordination) -> None:
        self.principal = principal
        self._coordination = coordination
        self._refreshed = asyncio.Event()

    async def refresh(self, ticket: str) -> None:
        """Redeem ``ticket`` as this socket's new credential (same user, same role).

        Raises ``NotAuthenticated`` if the ticket is unknown, used, expired or
        another user's; the old deadline then still holds.
        """
        principal = await redeem_ticket(self._coordination, ticket)
        if (principal.user_id, principal.admin) != (self.principal.user_id, self.principal.admin):
            raise NotAuthenticated("the ticket is for another user")
        self.principal = principal
        self._refreshed.set()

    async def expired(self) -> None:
        """Return when the credential expires (never, for one without ``expires_at``)."""
        while True:
            self._refreshed.clear()
            expires_at = self.principal.expires_at
            if expires_at is None:
                await self._refreshed.wait()
                continue
            remaining = expires_at - time.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._refreshed.wait(), remaining)
            except TimeoutError:
                pass  # the loop looks at the deadline again
