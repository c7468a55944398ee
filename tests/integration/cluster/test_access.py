"""Cross-node access cells on a real ``chatrelay cluster up`` in jwt mode.

A ticket issued by one gateway is redeemed once at another (the engine holds
it, not the gateway), and ownership holds across gateways.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from websockets.exceptions import ConnectionClosed

from chatrelay.wire_client import WireClient
from tests.authz_matrix import A_SECRET, bearer, token
from tests.fixtures.cluster import running_cluster
from tests.integration.test_authorization_matrix import JWT_ENV
from tests.timing import seconds


def _ws(url: str) -> str:
    return url.replace("http://", "ws://", 1) + "/ws/chat"


async def _close_code(url: str, query: dict[str, str]) -> int | None:
    try:
        client = await WireClient.connect(url, query, timeout=seconds(10))
    except ConnectionClosed as closed:
        return None if closed.rcvd is None else closed.rcvd.code
    await client.close()
    return None


async def test_a_ticket_crosses_gateways_once_and_ownership_holds(tmp_path: Path) -> None:
    with running_cluster(tmp_path / "run", gateways=2, workers=1, extra_env=JWT_ENV) as cluster:
        first, second = (node.url for node in cluster.of_role("gateway"))
        async with httpx.AsyncClient(timeout=seconds(10)) as http:
            issued = await http.post(f"{first}/api/ws-ticket", headers=bearer(token("alice")))
            ticket = issued.json()["ticket"]
            alice = await WireClient.connect(_ws(second), {"ticket": ticket}, timeout=seconds(10))
            assert alice.welcome is not None
            assert alice.welcome["user_id"] == "alice"
            assert alice.welcome["node"] == cluster.node_by_url(second).node_id
            session = alice.welcome["session_id"]
            await alice.follow(await alice.chat(A_SECRET), timeout=seconds(30))
            await alice.close()
            # Spent at the second gateway: refused at the first.
            assert await _close_code(_ws(first), {"ticket": ticket}) == 4401

            bob = bearer(token("bob"))
            bobs = await http.post(f"{second}/api/ws-ticket", headers=bob)
            query = {"ticket": bobs.json()["ticket"], "session_id": session}
            assert await _close_code(_ws(first), query) == 4403
            history = await http.get(f"{first}/api/history/{session}", headers=bob)
            assert history.status_code == 403
            assert A_SECRET not in history.text
