"""accounts mode in process: login, the session cookie, logout, and what it opens."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from chatrelay.auth.accounts import SESSION_COOKIE
from chatrelay.auth.passwords import hash_password
from chatrelay.llm.simulated import choose_answer
from chatrelay.store.users import UserStore
from chatrelay.wire_client import WireClient
from tests.app.asgi_socket import AsgiSocket
from tests.app.inprocess import InProcessApp, new_session, running_app
from tests.timing import seconds

PASSWORD = "correct horse battery"
LOGIN_BURST = 3


@pytest.fixture
async def accounts_app(tmp_path: Path) -> AsyncIterator[InProcessApp]:
    """An accounts-mode app with users alice and root (an administrator)."""
    database = tmp_path / "chatrelay.db"
    async with UserStore(f"sqlite+aiosqlite:///{database}") as users:
        await users.add("alice", hash_password(PASSWORD))
        await users.add("root", hash_password(PASSWORD), admin=True)
    async with running_app(
        database,
        auth_mode="accounts",
        login_rate_burst=LOGIN_BURST,
        login_rate_per_second=0.001,
    ) as running:
        yield running


async def login(app: InProcessApp, username: str, password: str = PASSWORD) -> httpx.Response:
    return await app.http.post("/api/login", json={"username": username, "password": password})


def set_cookie(response: httpx.Response) -> str:
    return response.headers["set-cookie"]


async def test_the_ui_learns_the_mode_without_credentials(accounts_app: InProcessApp) -> None:
    response = await accounts_app.http.get("/api/auth")
    assert response.json() == {"mode": "accounts", "user": None}
    await login(accounts_app, "root")
    response = await accounts_app.http.get("/api/auth")
    assert response.json() == {"mode": "accounts", "user": {"user_id": "root", "admin": True}}


async def test_a_login_sets_a_strict_http_only_cookie(accounts_app: InProcessApp) -> None:
    before = time.time()
    response = await login(accounts_app, "root")
    assert response.status_code == 200
    body = response.json()
    assert (body["user_id"], body["admin"]) == ("root", True)
    assert body["expires_at"] >= before + accounts_app.settings.session_ttl_seconds - 1
    cookie = set_cookie(response).lower()
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back


async def test_the_cookie_is_secure_behind_https(accounts_app: InProcessApp) -> None:
    response = await accounts_app.http.post(
        "/api/login",
        json={"username": "alice", "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert response.status_code == 200
    assert "; secure" in set_cookie(response).lower()


async def test_unknown_user_and_wrong_password_get_the_same_answer(
    accounts_app: InProcessApp,
) -> None:
    wrong = await login(accounts_app, "alice", "not the password")
    unknown = await login(accounts_app, "mallory", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "not_authenticated"
    assert "set-cookie" not in wrong.headers and "set-cookie" not in unknown.headers


async def test_login_attempts_are_rate_limited_per_name(accounts_app: InProcessApp) -> None:
    for _ in range(LOGIN_BURST):
        assert (await login(accounts_app, "alice", "guess-guess")).status_code == 401
    limited = await login(accounts_app, "alice", PASSWORD)  # even the right one, now
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) > 0


async def test_login_attempts_are_rate_limited_per_address(accounts_app: InProcessApp) -> None:
    for attempt in range(LOGIN_BURST):
        assert (await login(accounts_app, f"nobody-{attempt}", "guess-guess")).status_code == 401
    assert (await login(accounts_app, "root")).status_code == 429


async def test_rest_calls_authenticate_by_the_cookie(accounts_app: InProcessApp) -> None:
    assert (await accounts_app.http.get("/api/sessions")).status_code == 401
    assert (await login(accounts_app, "alice")).status_code == 200  # the client keeps the cookie
    session = new_session()
    chat = await accounts_app.http.post(
        "/api/chat", json={"session_id": session, "message": "hello there"}
    )
    assert chat.status_code == 202
    sessions = (await accounts_app.http.get("/api/sessions")).json()["sessions"]
    assert [s["id"] for s in sessions] == [session]
    history = await accounts_app.http.get(f"/api/history/{session}")
    assert history.status_code == 200
    assert history.json()["messages"][0]["content"] == "hello there"


async def test_a_user_id_in_the_query_names_nobody(accounts_app: InProcessApp) -> None:
    response = await accounts_app.http.get("/api/sessions", params={"user_id": "alice"})
    assert response.status_code == 401
    headers = {"X-User-Id": "alice"}
    assert (await accounts_app.http.get("/api/sessions", headers=headers)).status_code == 401


async def test_the_session_jwt_works_as_a_bearer_too(accounts_app: InProcessApp) -> None:
    response = await login(accounts_app, "alice")
    token = response.cookies[SESSION_COOKIE]
    accounts_app.http.cookies.clear()
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await accounts_app.http.get("/api/sessions", headers=bearer)).status_code == 200


async def test_logout_clears_the_cookie(accounts_app: InProcessApp) -> None:
    await login(accounts_app, "alice")
    assert (await accounts_app.http.get("/api/sessions")).status_code == 200
    response = await accounts_app.http.post("/api/logout")
    assert response.status_code == 204
    assert "max-age=0" in set_cookie(response).lower()
    assert (await accounts_app.http.get("/api/sessions")).status_code == 401


async def test_the_socket_authenticates_by_a_ticket_fetched_with_the_cookie(
    accounts_app: InProcessApp,
) -> None:
    """The cookie buys a one-time ticket; the upgrade carries only the ticket."""
    response = await login(accounts_app, "alice")
    cookie = f"{SESSION_COOKIE}={response.cookies[SESSION_COOKIE]}"
    # The cookie alone opens no socket (tickets only outside dev mode).
    alone = AsgiSocket(accounts_app.app, "/ws/chat", {}, headers={"Cookie": cookie})
    await alone.open()
    with pytest.raises(ConnectionClosed) as closed:
        await alone.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    issued = await accounts_app.http.post("/api/ws-ticket", headers={"Cookie": cookie})
    assert issued.status_code == 200, issued.text
    socket = AsgiSocket(accounts_app.app, "/ws/chat", {"ticket": issued.json()["ticket"]})
    await socket.open()
    try:
        client = WireClient(socket, timeout=seconds(10))
        await client.read_welcome()
        assert client.welcome["user_id"] == "alice"
        turn = await client.follow(await client.chat("hello there"))
        assert turn.text == choose_answer("hello there")
    finally:
        await socket.close()


async def test_a_socket_without_the_cookie_is_refused_4401(accounts_app: InProcessApp) -> None:
    refused = await accounts_app.socket(user_id="alice")
    with pytest.raises(ConnectionClosed) as closed:
        await refused.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_the_generated_secret_is_private_and_kept(tmp_path: Path) -> None:
    database = tmp_path / "chatrelay.db"
    async with running_app(database, auth_mode="accounts"):
        pass
    secret = tmp_path / "secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    first = secret.read_text()
    async with running_app(database, auth_mode="accounts"):
        pass
    assert secret.read_text() == first and len(first) >= 32


async def test_login_is_not_found_outside_accounts_mode(chat_app: InProcessApp) -> None:
    mode = (await chat_app.http.get("/api/auth")).json()
    assert mode == {"mode": "dev", "user": {"user_id": "demo_user", "admin": False}}
    response = await login(chat_app, "alice")
    assert response.status_code == 404
