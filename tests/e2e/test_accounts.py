"""accounts mode in a real browser: a user made with the CLI signs in, chats, signs out."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatrelay.llm.simulated import choose_answer
from tests.e2e.conftest import STATIC_INDEX
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
