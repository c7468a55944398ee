"""A socket's credential: who it runs as, until when, and its refresh by a new ticket.

A principal with an ``expires_at`` (a JWT's ``exp``) stops being valid then;
the socket's ``SocketCredential.expired`` is done at that moment and the
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
    """The principal of one socket; replaced by ``refresh``; ``expired`` is done at its deadline.

    The deadline is a timer on the event loop, not a task: one task less per
    socket (docs/benchmarks.md, "Per-socket cost"). ``close`` cancels it.
    """

    __slots__ = ("_coordination", "_timer", "expired", "principal")

    def __init__(self, principal: Principal, coordination: Coordination) -> None:
        self.principal = principal
        self._coordination = coordination
        #: Done when the credential expires (never, for one without ``expires_at``).
        self.expired: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._arm()

    async def refresh(self, ticket: str) -> None:
        """Redeem ``ticket`` as this socket's new credential (same user, same role).

        Raises ``NotAuthenticated`` if the ticket is unknown, used, expired or
        another user's; the old deadline then still holds.
        """
        principal = await redeem_ticket(self._coordination, ticket)
        if (principal.user_id, principal.admin) != (self.principal.user_id, self.principal.admin):
            raise NotAuthenticated("the ticket is for another user")
        self.principal = principal
        self._arm()

    def close(self) -> None:
        """Stop watching the deadline (the socket ended)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self.close()
        expires_at = self.principal.expires_at
        if expires_at is None or self.expired.done():
            return
        remaining = expires_at - time.time()
        if remaining <= 0:
            self._expire()
        else:
            self._timer = asyncio.get_running_loop().call_later(remaining, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if not self.expired.done():
            self.expired.set_result(None)
