"""The authorization matrix: every caller times every action on user A's session.

Runs against any ``Target`` (the in-process app, or a real ``chatrelay serve``):
callers are A, B, an administrator, no credentials, an expired token, a token
signed with the wrong key, ``alg: none``, a wrong audience, and a spent
ticket used again; actions are every socket action (connect, chat, cancel,
resume) and every REST route on A's session. Each cell has one expected
answer (an HTTP status, a close code, or a frame), and nothing of A's
content may reach anyone but A and the administrator.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import jwt
import orjson
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chatrelay.wire_client import WireClient
from tests.fixtures.processes import Server
from tests.timing import seconds

SECRET = "matrix-secret-0123456789abcdef0123456789"
AUDIENCE = "chatrelay-tests"
ISSUER = "https://login.example"
#: A's message: must never reach B or an unauthenticated caller.
A_SECRET = "the launch code is tangerine-4711"


class Target(Protocol):
    """Where the matrix runs: a REST client, and sockets to ``/ws/chat``."""

    http: httpx.AsyncClient

    async def open_socket(self, query: dict[str, str]) -> WireClient | int:
        """A welcomed socket, or the close code (403 for a refused upgrade) it got instead."""
        ...


@dataclass
class ServerTarget:
    """The matrix's ``Target`` over a real ``chatrelay serve``."""

    server: Server
    http: httpx.AsyncClient

    async def open_socket(self, query: dict[str, str]) -> WireClient | int:
        """A welcomed socket, or the HTTP status / close code that refused it."""
        try:
            return await WireClient.connect(self.server.ws, query, timeout=seconds(10))
        except InvalidStatus as refused:
            return refused.response.status_code
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code


def token(
    sub: str,
    *,
    admin: bool = False,
    lifetime: float = 3600,
    key: str = SECRET,
    audience: str = AUDIENCE,
    issuer: str = ISSUER,
) -> str:
    """An HS256 JWT as the operator's login (or ``accounts`` mode's) would mint it."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + int(lifetime)}
    claims |= {"aud": audience, "iss": issuer}
    if admin:
        claims["role"] = "admin"
    return jwt.encode(claims, key, algorithm="HS256")


def unsigned_token(sub: str, *, audience: str = AUDIENCE, issuer: str = ISSUER) -> str:
    """A token with ``alg: none``: whoever wrote it claims to be ``sub``."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    claims = {"sub": sub, "exp": int(time.time()) + 3600, "aud": audience, "iss": issuer}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def bearer(value: str | None) -> dict[str, str]:
    """Request headers carrying ``value`` as a Bearer token (none for ``None``)."""
    return {} if value is None else {"Authorization": f"Bearer {value}"}


#: How a caller's credential rides on a request: ``bearer``, or a session cookie.
Carrier = Callable[[str | None], dict[str, str]]


ALLOWED = "allowed"
CALLERS = ("A", "B", "admin", "none", "expired", "wrong_key", "alg_none", "wrong_aud", "replayed")
UNAUTHENTICATED = ("none", "expired", "wrong_key", "alg_none", "wrong_aud", "replayed")

#: caller -> action -> expected answer.
EXPECTED: dict[str, dict[str, object]] = {
    "A": {
        "ticket": 200,
        "connect": "welcome",
        "chat": "message",
        "cancel": "not_found",
        "resume": "replay",
        "history": 200,
        "sessions": "listed",
        "rest_chat": 202,
        "rest_cancel": 404,
        "search": "found",
        "rename": 200,
        "delete": 204,
        # Allowed, but A's first answer is no longer the last one.
        "regenerate": 409,  # not_latest
        # Allowed, but an answer is not a question to edit (regenerate it instead).
        "edit": 404,  # not_found
        "cluster": 403,
        "admin_cancel": 403,
    },
    "B": {
        "ticket": 200,
        "connect": 4403,
        "history": 403,
        "sessions": "not listed",
        "rest_chat": 403,
        "rest_cancel": 403,
        "search": "not found",
        "rename": 403,
        "delete": 403,
        "regenerate": 403,
        "edit": 403,
        "cluster": 403,
        "admin_cancel": 403,
    },
    "admin": {
        "ticket": 200,
        "connect": "welcome",
        "chat": "forbidden",
        "cancel": "not_found",
        "resume": "replay",
        "history": 200,
        "sessions": "not listed",
        "rest_chat": 403,
        "rest_cancel": 404,
        "search": "not found",
        "rename": 403,
        "delete": 403,
        "regenerate": 403,
        "edit": 403,
        "cluster": 200,
        "admin_cancel": 404,
    },
    **{
        caller: {
            "ticket": 401,
            "connect": 4401,
            "history": 401,
            "sessions": 401,
            "rest_chat": 401,
            "rest_cancel": 401,
            "search": 401,
            "rename": 401,
            "delete": 401,
            "regenerate": 401,
            "edit": 401,
            "cluster": 401,
            "admin_cancel": 401,
        }
        for caller in UNAUTHENTICATED
    },
}


@dataclass
class Observed:
    """What the matrix saw: one answer per cell, and every text each caller received."""

    cells: dict[tuple[str, str], object] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)

    def note(self, caller: str, action: str, got: object, text: str = "") -> None:
        self.cells[(caller, action)] = got
        self.texts.setdefault(caller, []).append(text)


def credentials(
    key: str = SECRET, audience: str = AUDIENCE, issuer: str = ISSUER
) -> dict[str, str | None]:
    """Each caller's token for a server verifying ``key``, ``audience`` and ``issuer``.

    ``replayed`` is filled in with a spent ticket by ``run_matrix``.
    """
    return {
        "A": token("alice", key=key, audience=audience, issuer=issuer),
        "B": token("bob", key=key, audience=audience, issuer=issuer),
        "admin": token("root", admin=True, key=key, audience=audience, issuer=issuer),
        "none": None,
        "expired": token("alice", lifetime=-3600, key=key, audience=audience, issuer=issuer),
        "wrong_key": token(
            "alice", key="not-the-servers-secret-0123456789abcdef", audience=audience, issuer=issuer
        ),
        "alg_none": unsigned_token("alice", audience=audience, issuer=issuer),
        "wrong_aud": token("alice", key=key, audience="another-service", issuer=issuer),
        "replayed": None,
    }


async def _first_of(client: WireClient, *types: str) -> dict[str, Any]:
    frame = await client.recv_type(*types, timeout=seconds(10))
    return dict(frame)


async def run_matrix(
    target: Target, creds: dict[str, str | None] | None = None, carry: Carrier = bearer
) -> Observed:
    """Set up A's session with a finished answer, then try every cell.

    ``creds`` are the callers' tokens (``credentials()``'s by default), each
    sent as ``carry`` puts it on a request (a Bearer header by default).
    """
    creds = dict(credentials() if creds is None else creds)
    http = target.http
    observed = Observed()

    # A's session: one chat, answered in full.
    response = await http.post("/api/ws-ticket", headers=carry(creds["A"]))
    assert response.status_code == 200, response.text
    session = f"s-{uuid.uuid4().hex[:12]}"
    setup = await target.open_socket({"ticket": response.json()["ticket"], "session_id": session})
    assert isinstance(setup, WireClient), setup
    answered = await setup.chat(A_SECRET)
    await setup.follow(answered, timeout=seconds(20))
    spent = response.json()["ticket"]
    creds["replayed"] = spent
    await setup.close()

    for caller in CALLERS:
        headers = carry(creds[caller])
        got = await http.post("/api/ws-ticket", headers=headers)
        observed.note(caller, "ticket", got.status_code, got.text)
        query = {"session_id": session}
        if got.status_code == 200:
            query["ticket"] = got.json()["ticket"]
        elif caller == "replayed":
            query["ticket"] = spent
        socket = await target.open_socket(query)
        if isinstance(socket, int):
            observed.note(caller, "connect", socket)
        else:
            observed.note(caller, "connect", "welcome")
            await _socket_actions(caller, socket, answered, observed)
        await _rest_actions(caller, http, headers, session, answered, observed)
        if caller != "A":  # A deletes last, once everyone else has tried
            await _delete(caller, http, headers, session, observed)
    await _delete("A", http, carry(creds["A"]), session, observed)
    return observed


async def _delete(
    caller: str, http: httpx.AsyncClient, headers: dict[str, str], session: str, observed: Observed
) -> None:
    deleted = await http.delete(f"/api/sessions/{session}", headers=headers)
    observed.note(caller, "delete", deleted.status_code, deleted.text)


async def _socket_actions(
    caller: str, client: WireClient, answered: str, observed: Observed
) -> None:
    welcome = client.welcome
    assert welcome is not None
    await client.send({"type": "resume", "epoch": welcome["epoch"], "offset": 0})
    replayed = await _first_of(client, "message")
    observed.note(caller, "resume", "replay", orjson.dumps(replayed).decode())
    await client.send({"type": "cancel", "message_id": answered})
    cancel = await _first_of(client, "error")
    observed.note(caller, "cancel", cancel["code"], orjson.dumps(cancel).decode())
    await client.send({"type": "chat", "content": f"{caller} says hi", "client_id": "m-1"})
    chat = await _first_of(client, "message", "error")
    if chat["type"] == "message":
        observed.note(caller, "chat", "message")
        await client.recv_type("complete", timeout=seconds(20))
    else:
        observed.note(caller, "chat", chat["code"])
    await client.close()


async def _rest_actions(
    caller: str,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    session: str,
    answered: str,
    observed: Observed,
) -> None:
    history = await http.get(f"/api/history/{session}", headers=headers)
    observed.note(caller, "history", history.status_code, history.text)
    sessions = await http.get("/api/sessions", headers=headers)
    listed: object = sessions.status_code
    if sessions.status_code == 200:
        ids = [s["id"] for s in sessions.json()["sessions"]]
        listed = "listed" if session in ids else "not listed"
    observed.note(caller, "sessions", listed, sessions.text)
    cancel = await http.post(
        "/api/cancel", json={"session_id": session, "message_id": answered}, headers=headers
    )
    observed.note(caller, "rest_cancel", cancel.status_code, cancel.text)
    # The cluster view names sessions and users, never their words.
    cluster = await http.get("/api/admin/cluster", headers=headers)
    observed.note(caller, "cluster", cluster.status_code, cluster.text)
    admin_cancel = await http.post(
        "/api/admin/cancel", json={"session_id": session, "message_id": answered}, headers=headers
    )
    observed.note(caller, "admin_cancel", admin_cancel.status_code, admin_cancel.text)
    chat = await http.post(
        "/api/chat", json={"message": f"{caller} via REST", "session_id": session}, headers=headers
    )
    observed.note(caller, "rest_chat", chat.status_code, chat.text)
    search = await http.get("/api/search", params={"q": "tangerine"}, headers=headers)
    found: object = search.status_code
    if search.status_code == 200:
        ids = [r["id"] for r in search.json()["results"]]
        found = "found" if session in ids else "not found"
    observed.note(caller, "search", found, search.text)
    rename = await http.patch(
        f"/api/sessions/{session}", json={"title": f"{caller}'s title"}, headers=headers
    )
    observed.note(caller, "rename", rename.status_code, rename.text)
    again = await http.post(
        "/api/regenerate", json={"session_id": session, "message_id": answered}, headers=headers
    )
    observed.note(caller, "regenerate", again.status_code, again.text)
    edit = await http.post(
        "/api/edit",
        json={"session_id": session, "message_id": answered, "content": f"{caller} edits"},
        headers=headers,
    )
    observed.note(caller, "edit", edit.status_code, edit.text)


def check(observed: Observed) -> None:
    """Every cell as expected, and A's words nowhere but with A and the administrator."""
    wrong = [
        f"{caller}/{action}: expected {expected!r}, got {observed.cells.get((caller, action))!r}"
        for caller, actions in EXPECTED.items()
        for action, expected in actions.items()
        if observed.cells.get((caller, action)) != expected
    ]
    assert not wrong, "\n".join(wrong)
    for caller, texts in observed.texts.items():
        if caller not in ("A", "admin"):
            assert not any(A_SECRET in text for text in texts), f"{caller} saw A's message"
