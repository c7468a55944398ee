"""Access in a non-dev mode, in process: tickets, expiry and refresh, ownership, Origin, quotas.

The app authenticates REST calls with ``tests.app.access.HeaderAuthenticator``
(a stand-in for a JWT) and sockets with tickets only, as a real non-dev
deployment does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from chatrelay.engine import create_engine
from chatrelay.exceptions import QuotaExceeded
from chatrelay.gateway.access_routes import TICKET_BURST
from chatrelay.gateway.quotas import DISPATCH_GRACE_SECONDS, Quotas
from chatrelay.store.conversations import ConversationStore
from tests.app.access import (
    SharedEngine,
    access_app,
    as_user,
    refusal,
    ticket,
    use_header_auth,
)
from tests.app.inprocess import InProcessApp, new_session
from tests.timing import seconds

ALICE, BOB, ROOT = as_user("alice"), as_user("bob"), as_user("root", admin=True)
FOREIGN = "https://evil.example"


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[InProcessApp]:
    use_header_auth(monkeypatch)
    async with access_app(tmp_path / "chatrelay.db") as running:
        yield running


# -- tickets


async def test_a_ticket_opens_one_socket_as_its_user(app: InProcessApp) -> None:
    value = await ticket(app, ALICE)
    client = await app.connect(ticket=value)
    assert client.welcome["user_id"] == "alice"
    assert await refusal(app, ticket=value) == 4401  # replayed


async def test_outside_dev_mode_a_socket_needs_a_ticket(app: InProcessApp) -> None:
    assert await refusal(app, user_id="alice") == 4401  # dev mode's form
    assert await refusal(app, headers=ALICE) == 4401  # no long-lived credential on a socket
    assert await refusal(app, ticket="made-up") == 4401


async def test_a_ticket_needs_credentials(app: InProcessApp) -> None:
    response = await app.http.post("/api/ws-ticket")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


async def test_tickets_are_rate_limited_per_user(app: InProcessApp) -> None:
    statuses: list[int] = []
    # The bucket refills while we ask: a refusal comes soon after the burst, however slow.
    while 429 not in statuses and len(statuses) < 4 * TICKET_BURST:
        statuses.append((await app.http.post("/api/ws-ticket", headers=ALICE)).status_code)
    assert statuses[: int(TICKET_BURST)] == [200] * int(TICKET_BURST)
    assert statuses[-1] == 429
    assert (await app.http.post("/api/ws-ticket", headers=BOB)).status_code == 200


async def test_a_ticket_from_one_gateway_opens_a_socket_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_header_auth(monkeypatch)
    memory = create_engine("memory://")
    shared = SharedEngine(memory.broker, memory.registry, memory.coordination)
    try:
        async with (
            access_app(tmp_path / "a.db", shared, node_id="gw-a") as first,
            access_app(tmp_path / "b.db", shared, node_id="gw-b") as second,
        ):
            value = await ticket(first, ALICE)
            client = await second.connect(ticket=value)
            assert (client.welcome["node"], client.welcome["user_id"]) == ("gw-b", "alice")
            assert await refusal(first, ticket=value) == 4401
    finally:
        await memory.aclose()


# -- expiry and refresh


async def test_a_socket_is_closed_4401_when_its_token_expires(app: InProcessApp) -> None:
    client = await app.connect(ticket=await ticket(app, as_user("alice", lifetime=seconds(0.5))))
    error = await client.recv_type("error", timeout=seconds(5))
    assert error["code"] == "token_expired"
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv(timeout=seconds(5))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_a_refresh_moves_the_deadline(app: InProcessApp) -> None:
    client = await app.connect(ticket=await ticket(app, as_user("alice", lifetime=seconds(0.5))))
    fresh = await ticket(app, as_user("alice", lifetime=seconds(60)))
    await client.send({"type": "refresh", "ticket": fresh})
    await client.send({"type": "ping"})
    await client.recv_type("pong")
    # Past the first deadline, the socket still chats.
    message_id = await client.chat("hello after the first deadline")
    turn = await client.follow(message_id, timeout=seconds(10))
    assert turn.complete is not None and turn.complete["status"] == "completed"
    assert not [f for f in client.frames if f["type"] == "error"]


async def test_a_refresh_with_another_users_ticket_closes_the_socket(app: InProcessApp) -> None:
    client = await app.connect(ticket=await ticket(app, ALICE))
    await client.send({"type": "refresh", "ticket": await ticket(app, BOB)})
    error = await client.recv_type("error")
    assert error["code"] == "token_expired"
    assert "another user" in error["detail"]


async def test_an_expired_principal_gets_no_socket(app: InProcessApp) -> None:
    value = await ticket(app, as_user("alice", lifetime=-1))
    assert await refusal(app, ticket=value) == 4401


# -- ownership


async def test_another_users_session_is_refused_everywhere(app: InProcessApp) -> None:
    session = new_session()
    owner = await app.connect(ticket=await ticket(app, ALICE), session_id=session)
    message_id = await owner.chat("a secret of alice")
    await owner.follow(message_id)
    http = app.http

    assert await refusal(app, ticket=await ticket(app, BOB), session_id=session) == 4403
    history = await http.get(f"/api/history/{session}", headers=BOB)
    assert history.status_code == 403 and "secret" not in history.text
    chat = await http.post("/api/chat", json={"message": "hi", "session_id": session}, headers=BOB)
    assert chat.status_code == 403
    body = {"session_id": session, "message_id": message_id}
    assert (await http.post("/api/cancel", json=body, headers=BOB)).status_code == 403
    sessions = await http.get("/api/sessions", headers=BOB)
    assert sessions.status_code == 200 and sessions.json()["sessions"] == []
    # The user id never comes from the query outside dev mode.
    spoofed = await http.get(f"/api/history/{session}", params={"user_id": "alice"}, headers=BOB)
    assert spoofed.status_code == 403
    assert (await http.get(f"/api/history/{session}")).status_code == 401


async def test_an_administrator_reads_and_cancels_but_does_not_chat(app: InProcessApp) -> None:
    session = new_session()
    owner = await app.connect(ticket=await ticket(app, ALICE), session_id=session)
    message_id = await owner.chat("please explain the stream")
    await owner.recv_type("chunk")

    watcher = await app.connect(ticket=await ticket(app, ROOT), session_id=session)
    assert watcher.welcome["user_id"] == "root"
    history = await app.http.get(f"/api/history/{session}", headers=ROOT)
    assert history.status_code == 200 and history.json()["messages"]
    await watcher.send({"type": "chat", "content": "as alice"})
    refused = await watcher.recv_type("error")
    assert refused["code"] == "forbidden"
    body = {"session_id": session, "message_id": message_id}
    assert (await app.http.post("/api/cancel", json=body, headers=ROOT)).status_code == 200
    turn = await owner.follow(message_id)
    assert turn.complete is not None and turn.complete["status"] == "cancelled"


# -- Origin


async def test_a_socket_from_a_foreign_origin_is_refused_before_accept(app: InProcessApp) -> None:
    value = await ticket(app, ALICE)
    assert await refusal(app, headers={"Origin": FOREIGN}, ticket=value) == 1000
    # Refused before anything ran: the ticket is still unspent.
    client = await app.connect(headers={"Origin": "http://testserver"}, ticket=value)
    assert client.welcome["user_id"] == "alice"


async def test_a_cookie_write_from_a_foreign_origin_is_refused(app: InProcessApp) -> None:
    headers = {**ALICE, "Origin": FOREIGN, "Cookie": "chatrelay_session=x"}
    response = await app.http.post("/api/ws-ticket", headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    # The refusal passes through the security headers like any answer.
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    # Without cookies a foreign page holds no credential: judged by the token alone.
    no_cookie = await app.http.post("/api/ws-ticket", headers={**ALICE, "Origin": FOREIGN})
    assert no_cookie.status_code == 200


async def test_allowed_origins_may_connect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_header_auth(monkeypatch)
    async with access_app(tmp_path / "db", allowed_origins=["https://app.example"]) as app:
        value = await ticket(app, ALICE)
        client = await app.connect(headers={"Origin": "https://app.example/"}, ticket=value)
        assert client.welcome["user_id"] == "alice"


# -- quotas


async def test_running_answers_are_capped_per_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_header_auth(monkeypatch)
    async with access_app(tmp_path / "db", max_concurrent_generations=1) as app:
        first = await app.connect(ticket=await ticket(app, ALICE), session_id=new_session())
        second = await app.connect(ticket=await ticket(app, ALICE), session_id=new_session())
        running = await first.chat("please explain the stream")
        await first.recv_type("chunk")
        await second.send({"type": "chat", "content": "me too", "client_id": "c-2"})
        refused = await second.recv_type("error")
        assert refused["code"] == "quota_exceeded"
        assert "at most 1" in refused["detail"]
        me = (await app.http.get("/api/me", headers=ALICE)).json()
        assert me == {
            "user_id": "alice",
            "role": "user",
            "usage": {"running": 1, "tokens_today": 0},
            "limits": {"max_concurrent_generations": 1, "daily_tokens": 0},
        }
        # Bob has slots of his own.
        other = await app.http.post(
            "/api/chat", json={"message": "hi", "session_id": new_session()}, headers=BOB
        )
        assert other.status_code == 202
        await first.follow(running)
        # The ended answer frees the slot; the socket stayed usable.
        answered = await second.chat("now it is my turn")
        turn = await second.follow(answered)
        assert turn.complete is not None and turn.complete["status"] == "completed"


async def test_the_daily_token_budget_refuses_with_429(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_header_auth(monkeypatch)
    async with access_app(tmp_path / "db", user_daily_tokens=5) as app:
        client = await app.connect(ticket=await ticket(app, ALICE), session_id=new_session())
        await client.follow(await client.chat("hello there"))  # more than 5 words
        response = await app.http.post(
            "/api/chat", json={"message": "again", "session_id": new_session()}, headers=ALICE
        )
        assert response.status_code == 429
        assert response.json()["code"] == "quota_exceeded"
        assert "00:00 UTC" in response.json()["detail"]
        assert int(response.headers["Retry-After"]) > 0
        me = (await app.http.get("/api/me", headers=ALICE)).json()
        assert me["usage"]["tokens_today"] >= 5
        assert me["limits"]["daily_tokens"] == 5


async def test_a_crashed_answer_does_not_hold_its_slot_forever(tmp_path: Path) -> None:
    """A slot whose answer never took its lease (the worker died) is dropped after the grace."""
    engine = create_engine("memory://")
    async with ConversationStore(f"sqlite+aiosqlite:///{tmp_path}/q.db") as store:
        quotas = Quotas(engine.coordination, store, max_running=1, daily_tokens=0)
        await quotas.claim("alice", "s1", "m1")
        with pytest.raises(QuotaExceeded):
            await quotas.claim("alice", "s2", "m2")
        # As if the dispatch grace had passed with no lease taken (the worker died).
        member = (await engine.coordination.slot_members("running:alice"))[0]
        session, message, claimed = member.split(" ")
        await engine.coordination.release_slot("running:alice", member)
        stale = f"{session} {message} {float(claimed) - DISPATCH_GRACE_SECONDS - 1}"
        await engine.coordination.claim_slot("running:alice", stale, 1, 60)
        await quotas.claim("alice", "s2", "m2")
        assert (await quotas.usage("alice")).running == 1
    await engine.aclose()
