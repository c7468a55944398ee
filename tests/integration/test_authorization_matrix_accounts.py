"""The authorization matrix (``tests/authz_matrix.py``) on a real server in accounts mode.

A, B and the administrator are made with ``chatrelay users add`` and sign in
with ``POST /api/login``; their session cookies are the credentials, and
sockets open with tickets from ``/api/ws-ticket`` called with those cookies.
The forged callers are session JWTs minted the way ``auth/accounts.py`` mints
them (an expired one with the server's secret, one with another key, one with
``alg: none``, one for another audience), sent as the session cookie.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from chatrelay.auth.accounts import SESSION_AUDIENCE, SESSION_COOKIE, SESSION_ISSUER
from tests.authz_matrix import ServerTarget, check, credentials, run_matrix
from tests.fixtures.processes import CHATRELAY, Server, start_server
from tests.timing import seconds

SERVER_SECRET = "accounts-matrix-secret-0123456789abcdef"
#: user name -> administrator?; the matrix's A, B and admin.
USERS = {"alice": False, "bob": False, "root": True}
CALLER_OF = {"alice": "A", "bob": "B", "root": "admin"}
PASSWORD = "correct horse battery staple"


def add_user(tmp_path: Path, db_url: str, name: str, admin: bool) -> None:
    """``chatrelay users add NAME [--admin]``, the password on stdin."""
    added = subprocess.run(
        [*CHATRELAY, "users", "add", name, *(["--admin"] if admin else [])],
        input=f"{PASSWORD}\n",
        env={**os.environ, "CHATRELAY_DATABASE_URL": db_url},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=seconds(60),
    )
    assert added.returncode == 0, added.stderr


def session_cookie(value: str | None) -> dict[str, str]:
    """Request headers carrying ``value`` as the session cookie (none for ``None``)."""
    return {} if value is None else {"Cookie": f"{SESSION_COOKIE}={value}"}


@pytest.fixture
def accounts_server(tmp_path: Path) -> Iterator[Server]:
    db_url = f"sqlite+aiosqlite:///{tmp_path}/chatrelay.db"
    for name, admin in USERS.items():
        add_user(tmp_path, db_url, name, admin)
    env = {"CHATRELAY_AUTH_MODE": "accounts", "CHATRELAY_SECRET": SERVER_SECRET}
    running = start_server(tmp_path, env, db_url=db_url)
    try:
        yield running
    finally:
        running.process.stop()


@pytest.fixture
async def target(accounts_server: Server) -> AsyncIterator[ServerTarget]:
    # No cookie jar: each request carries exactly the caller's cookie, set by hand.
    async with httpx.AsyncClient(base_url=accounts_server.http, timeout=seconds(10)) as http:
        yield ServerTarget(accounts_server, http)


async def log_in(server: Server, name: str) -> str:
    """The session cookie ``POST /api/login`` sets for ``name``."""
    async with httpx.AsyncClient(base_url=server.http, timeout=seconds(10)) as http:
        response = await http.post("/api/login", json={"username": name, "password": PASSWORD})
        assert response.status_code == 200, response.text
        assert response.json()["admin"] is USERS[name]
        cookie = http.cookies.get(SESSION_COOKIE)
    assert cookie is not None
    return cookie


async def test_every_caller_gets_exactly_its_cell_on_as_session(target: ServerTarget) -> None:
    creds = credentials(key=SERVER_SECRET, audience=SESSION_AUDIENCE, issuer=SESSION_ISSUER)
    for name, caller in CALLER_OF.items():
        creds[caller] = await log_in(target.server, name)
    check(await run_matrix(target, creds, carry=session_cookie))


async def test_a_forged_cookie_is_refused_where_a_real_one_is_not(target: ServerTarget) -> None:
    """The forged callers are refused for their flaw, not their form.

    The same minting with the server's secret and a live ``exp`` is accepted,
    so the expired, wrong-key and ``alg: none`` cells test what they name.
    """
    minted = credentials(key=SERVER_SECRET, audience=SESSION_AUDIENCE, issuer=SESSION_ISSUER)
    me = await target.http.get("/api/me", headers=session_cookie(minted["A"]))
    assert me.status_code == 200, me.text
    assert me.json()["user_id"] == "alice"
    for forged in ("expired", "wrong_key", "alg_none", "wrong_aud"):
        refused = await target.http.get("/api/me", headers=session_cookie(minted[forged]))
        assert refused.status_code == 401, (forged, refused.text)
