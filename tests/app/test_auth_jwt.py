"""jwt mode in process: REST calls by Bearer token, and the refusals a caller sees."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest

from tests.app.inprocess import InProcessApp, new_session, running_app
from tests.unit.auth.keys import claims, public_pem, rsa_key, unsigned

ISSUER = "https://login.example"
AUDIENCE = "chatrelay"
KEY = rsa_key()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_for(sub: str, **extra: object) -> str:
    payload = claims(sub) | {"iss": ISSUER, "aud": AUDIENCE} | extra
    return jwt.encode(payload, KEY, algorithm="RS256")


@pytest.fixture
async def jwt_app(tmp_path: Path) -> AsyncIterator[InProcessApp]:
    async with running_app(
        tmp_path / "chatrelay.db",
        auth_mode="jwt",
        jwt_public_key=public_pem(KEY),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    ) as running:
        yield running


async def test_rest_calls_authenticate_by_bearer(jwt_app: InProcessApp) -> None:
    session = new_session()
    headers = bearer(token_for("alice"))
    chat = await jwt_app.http.post(
        "/api/chat", json={"session_id": session, "message": "hello"}, headers=headers
    )
    assert chat.status_code == 202
    history = await jwt_app.http.get(f"/api/history/{session}", headers=headers)
    assert history.json()["messages"][0]["content"] == "hello"
    assert (await jwt_app.http.get("/api/auth")).json()["mode"] == "jwt"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: token_for("alice", exp=1), id="expired"),
        pytest.param(
            lambda: jwt.encode(
                claims("alice", iss=ISSUER, aud=AUDIENCE), rsa_key(), algorithm="RS256"
            ),
            id="wrong-key",
        ),
        pytest.param(lambda: unsigned(claims("alice", iss=ISSUER, aud=AUDIENCE)), id="alg-none"),
        pytest.param(lambda: token_for("alice", aud="billing"), id="wrong-audience"),
        pytest.param(lambda: token_for("alice", iss="https://evil.example"), id="wrong-issuer"),
        pytest.param(lambda: "not-a-jwt", id="garbage"),
    ],
)
async def test_bad_tokens_get_401(jwt_app: InProcessApp, token: object) -> None:
    response = await jwt_app.http.get("/api/sessions", headers=bearer(token()))  # type: ignore[operator]
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


async def test_no_token_and_dev_style_user_ids_get_401(jwt_app: InProcessApp) -> None:
    assert (await jwt_app.http.get("/api/sessions")).status_code == 401
    dev_style = await jwt_app.http.get("/api/sessions", params={"user_id": "alice"})
    assert dev_style.status_code == 401
    assert (await jwt_app.http.get("/api/sessions", headers={"X-User-Id": "a"})).status_code == 401


async def test_login_routes_do_not_exist_in_jwt_mode(jwt_app: InProcessApp) -> None:
    response = await jwt_app.http.post("/api/login", json={"username": "a", "password": "b"})
    assert response.status_code == 404
