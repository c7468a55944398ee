"""The authorization matrix (``tests/authz_matrix.py``) on the in-process app in ``jwt`` mode.

The same matrix runs on a real ``chatrelay serve`` in
tests/integration/test_authorization_matrix.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from websockets.exceptions import ConnectionClosed

from chatrelay.engine import create_engine
from chatrelay.wire_client import WireClient
from tests.app.access import access_app
from tests.app.asgi_socket import HandshakeRefused
from tests.app.inprocess import InProcessApp
from tests.authz_matrix import AUDIENCE, ISSUER, SECRET, bearer, check, run_matrix, token
from tests.timing import seconds

# A refusal before accept is an HTTP 403 on a real network.
REFUSED_UPGRADE = 403


@dataclass
class InProcessTarget:
    """The matrix's ``Target`` over an in-process app."""

    app: InProcessApp

    @property
    def http(self) -> httpx.AsyncClient:
        return self.app.http

    async def open_socket(self, query: dict[str, str]) -> WireClient | int:
        try:
            socket = await self.app.socket(**query)  # closed by the app if still open
        except HandshakeRefused:
            return REFUSED_UPGRADE
        client = WireClient(socket, timeout=seconds(10))
        try:
            await client.read_welcome()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code
        return client


#: The settings of ``jwt`` mode verifying the matrix's tokens.
JWT_SETTINGS = {"jwt_secret": SECRET, "jwt_audience": AUDIENCE, "jwt_issuer": ISSUER}


async def test_every_caller_gets_exactly_its_cell_on_as_session(tmp_path: Path) -> None:
    async with access_app(tmp_path / "chatrelay.db", **JWT_SETTINGS) as app:
        check(await run_matrix(InProcessTarget(app)))


async def test_a_ticket_from_one_gateway_is_redeemed_once_at_another_on_redis(
    tmp_path: Path, redis_url: str
) -> None:
    """Two gateways, one Redis: the cross-node cells (a real engine, in-process apps)."""
    database = tmp_path / "shared.db"
    # Each app has its own engine on the one Redis (and closes it), as two nodes do.
    async with (
        access_app(database, create_engine(redis_url), node_id="gw-1", **JWT_SETTINGS) as first,
        access_app(database, create_engine(redis_url), node_id="gw-2", **JWT_SETTINGS) as second,
    ):
        issued = await first.http.post("/api/ws-ticket", headers=bearer(token("alice")))
        ticket = issued.json()["ticket"]
        at_second = await InProcessTarget(second).open_socket({"ticket": ticket})
        assert isinstance(at_second, WireClient)
        assert at_second.welcome is not None
        assert (at_second.welcome["node"], at_second.welcome["user_id"]) == ("gw-2", "alice")
        # Spent on gw-2: refused on either gateway.
        assert await InProcessTarget(first).open_socket({"ticket": ticket}) == 4401
        assert await InProcessTarget(second).open_socket({"ticket": ticket}) == 4401
        # B cannot read what A's session holds through the other gateway either.
        session = at_second.welcome["session_id"]
        await at_second.follow(await at_second.chat("hello from alice"))
        refused = await first.http.get(f"/api/history/{session}", headers=bearer(token("bob")))
        assert refused.status_code == 403
