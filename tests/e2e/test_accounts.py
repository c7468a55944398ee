"""accounts mode in a real browser: a user made with the CLI signs in, chats, signs out."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from chatrelay.harness.readiness import wait_ready
from chatrelay.llm.simulated import choose_answer
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import STATIC_INDEX
from tests.e2e.cross_site import PAGE_NAME, PROBE, NetworkLog, serve_probe_page
from tests.e2e.test_chat_ui import assistant, body_text, normalise, send, session_of, wait_status
from tests.fixtures.processes import CHATRELAY, Server, start_server
from tests.timing import seconds

pytestmark = pytest.mark.e2e

USER = "alice"
PASSWORD = "correct horse battery"
PROMPT = "Hi there"


@pytest.fixture
def accounts_server(tmp_path: Path) -> Iterator[Server]:
    """``chatrelay serve`` in accounts mode, with ``alice`` added by ``chatrelay users add``."""
    if not STATIC_INDEX.is_file():
        pytest.fail("the web UI is not built: run `make web` (cd web && npm ci && npm run build)")
    db_url = f"sqlite+aiosqlite:///{tmp_path}/chatrelay.db"
    added = subprocess.run(
        [*CHATRELAY, "users", "add", USER],
        input=f"{PASSWORD}\n",
        env={**os.environ, "CHATRELAY_DATABASE_URL": db_url},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=seconds(60),
    )
    assert added.returncode == 0, added.stderr
    server = start_server(
        tmp_path, env={"CHATRELAY_AUTH_MODE": "accounts", "CHUNK_DELAY": "0.01"}, db_url=db_url
    )
    try:
        yield server
    finally:
        server.process.stop(seconds(10))


def sign_in(page: Any, server: Server, password: str) -> None:
    page.goto(server.http + "/")
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_chat_and_sign_out(accounts_server: Server, page: Any) -> None:
    sign_in(page, accounts_server, "not the password")
    assert page.get_by_role("alert").inner_text() == "Wrong user name or password."
    assert_accessible(page)  # the login page, its error shown

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    sidebar = page.get_by_role("complementary", name="Conversations")
    sidebar.get_by_text(f"Signed in as {USER}").wait_for()

    send(page, PROMPT)
    session_id = session_of(page)
    answer = assistant(page)
    wait_status(answer, "completed")
    assert body_text(answer) == normalise(choose_answer(PROMPT))
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    session_cookie = cookies["chatrelay_session"]
    assert session_cookie["httpOnly"] is True and session_cookie["sameSite"] == "Strict"
    history = httpx.get(
        f"{accounts_server.http}/api/history/{session_id}",
        cookies={"chatrelay_session": session_cookie["value"]},
        timeout=seconds(10),
    )
    assert [m["role"] for m in history.json()["messages"]] == ["user", "assistant"]

    sidebar.get_by_role("button", name="Sign out").click()
    page.get_by_label("User name").wait_for()
    assert "chatrelay_session" not in {cookie["name"] for cookie in page.context.cookies()}
    anonymous = httpx.get(f"{accounts_server.http}/api/history/{session_id}", timeout=seconds(10))
    assert anonymous.status_code == 401


def connected_count(server: Server) -> int:
    """Sockets the server has let in so far (its ``WebSocket connected`` log lines)."""
    return server.process.log().count("WebSocket connected")


def refused_upgrades(server: Server) -> int:
    """Socket upgrades answered 403 so far (uvicorn's line for a refused handshake)."""
    return server.process.log().count('"WebSocket /ws/chat" 403')


def test_another_origin_cannot_use_the_cookie(
    accounts_server: Server, page: Any, tmp_path: Path
) -> None:
    """A page of another origin on this host gets the cookie attached, and still gets nothing."""
    sign_in(page, accounts_server, PASSWORD)
    send(page, PROMPT)
    session_id = session_of(page)
    wait_status(assistant(page), "completed")

    # The probe on the server's own origin: a ticket and a welcome. (Without a
    # ticket the socket opens and is closed 4401: the ticket rule, not Origin.)
    own = page.evaluate(PROBE, {"base": accounts_server.http, "sessionId": session_id})
    assert own == {
        "direct": {"opened": True, "welcomed": False, "code": 4401},
        "ticket": {"status": 200, "error": None, "got": True},
        "ticketed": {"opened": True, "welcomed": True, "code": 1000},
    }

    connected, refused = connected_count(accounts_server), refused_upgrades(accounts_server)
    with serve_probe_page(tmp_path / "other-site") as other_origin:
        other = page.context.new_page()
        network = NetworkLog(other)
        query = urlencode({"target": accounts_server.http, "session": session_id})
        other.goto(f"{other_origin}/{PAGE_NAME}?{query}")
        seen = other.wait_for_function("() => window.probeResults").json_value()

    # What the other page could observe: its socket never opened (1006: the
    # upgrade was refused), the ticket request failed, so no ticketed socket.
    assert seen["direct"] == {"opened": False, "welcomed": False, "code": 1006}
    assert seen["ticket"]["got"] is False and seen["ticket"]["status"] is None
    assert "Failed to fetch" in seen["ticket"]["error"]
    assert seen["ticketed"] is None
    # What went over the wire: the upgrade carried the other origin and got 403;
    # the ticket request carried alice's cookie and the other origin, and got 403.
    ticket_url = f"{accounts_server.http}/api/ws-ticket"
    network.wait_for(
        lambda: any(e.status and e.headers for e in network.to(ticket_url)),
        "raw headers and status of POST /api/ws-ticket",
        seconds(10),
    )
    [attempt] = network.sockets.values()
    assert attempt.headers["origin"] == other_origin
    assert attempt.error == "Error during WebSocket handshake: Unexpected response code: 403"
    [ticket] = network.to(ticket_url)
    assert ticket.headers["origin"] == other_origin
    assert "chatrelay_session=" in ticket.headers["cookie"]
    assert ticket.status == 403
    # The server's side: one more refused upgrade, not one more socket let in.
    wait_ready(
        lambda: refused_upgrades(accounts_server) == refused + 1,
        [accounts_server.process],
        "the server's log line for the refused upgrade",
        seconds(10),
    )
    assert connected_count(accounts_server) == connected

    # alice's own page, on the right origin, still chats.
    send(page, PROMPT)
    second = assistant(page, 1)
    wait_status(second, "completed")
    assert body_text(second) == normalise(choose_answer(PROMPT))
    assert connected_count(accounts_server) == connected
