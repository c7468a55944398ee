"""REST bodies over the limit are refused before they are read (issue 17, finding 2)."""

from __future__ import annotations

import json

from tests.app.inprocess import InProcessApp, new_session, new_user

EMOJI = "\U0001f600"


async def test_finding_2_a_100_mb_chat_is_refused_with_413(chat_app: InProcessApp) -> None:
    body = b'{"session_id": "s1", "message": "' + b"a" * (100 * 1024 * 1024) + b'"}'
    response = await chat_app.http.post(
        "/api/chat",
        content=body,
        params={"user_id": new_user()},
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert "request_id" not in response.json()


async def test_finding_2_any_message_within_the_character_limit_is_not_too_large(
    chat_app: InProcessApp,
) -> None:
    # 16,000 escaped emoji: 192 KB of JSON, the largest body a valid chat can be.
    message = EMOJI * chat_app.settings.max_message_chars
    body = json.dumps({"session_id": new_session(), "message": message}).encode()
    response = await chat_app.http.post(
        "/api/chat",
        content=body,
        params={"user_id": new_user()},
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 202, response.text
