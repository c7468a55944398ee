"""Opening ``/ws/chat`` in-process: the welcome, and every refusal's close code."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect


def refusal(client: TestClient, query: str) -> tuple[int, str]:
    """The close code and reason of a socket the gateway refuses."""
    with (
        client.websocket_connect(f"/ws/chat?{query}") as websocket,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        websocket.receive_json()
    return closed.value.code, closed.value.reason


CHAT = {"message": "hello"}


def sessions(client: TestClient, user: str) -> list[str]:
    response = client.get("/api/sessions", params={"user_id": user})
    assert response.status_code == 200, response.text
    return [session["id"] for session in response.json()["sessions"]]


def test_a_welcome_names_node_session_user_and_position(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat?user_id=ana&session_id=s1") as websocket:
        welcome = websocket.receive_json()
    epoch = welcome.pop("epoch")
    assert isinstance(epoch, str) and epoch
    assert welcome == {
        "type": "welcome",
        "node": "node-t",
        "session_id": "s1",
        "user_id": "ana",
        "offset": 0,
        "protocol": 1,
    }


def test_a_socket_without_session_id_gets_a_new_session(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat?user_id=ana") as websocket:
        assert websocket.receive_json()["session_id"]


def test_an_unknown_token_is_refused_with_4401(client: TestClient) -> None:
    assert refusal(client, "user_id=ana&token=wrong") == (4401, "unknown token")


def test_a_malformed_session_id_is_refused_with_4400(client: TestClient) -> None:
    code, _ = refusal(client, "user_id=ana&session_id=no%20spaces")
    assert code == 4400


def test_another_users_session_is_refused_with_4403(client: TestClient) -> None:
    # A session is ana's from her first accepted chat on.
    chat = client.post("/api/chat", params={"user_id": "ana"}, json=CHAT | {"session_id": "mine"})
    assert chat.status_code == 202, chat.text
    assert refusal(client, "user_id=bob&session_id=mine") == (
        4403,
        "this session belongs to another user",
    )


def test_a_user_over_the_limit_is_refused_with_4429(client: TestClient) -> None:
    # The fixture allows two sockets per user.
    with (
        client.websocket_connect("/ws/chat?user_id=ana&session_id=a") as first,
        client.websocket_connect("/ws/chat?user_id=ana&session_id=b") as second,
    ):
        first.receive_json()
        second.receive_json()
        assert refusal(client, "user_id=ana&session_id=c") == (
            4429,
            "too many connections for this user",
        )
    with client.websocket_connect("/ws/chat?user_id=ana&session_id=c") as third:
        assert third.receive_json()["type"] == "welcome"


@pytest.mark.parametrize("session_id", [".", "..", "-x", "_x", ":x"])
def test_finding_14_session_ids_not_starting_with_a_letter_or_digit_are_refused(
    client: TestClient, session_id: str
) -> None:
    code, reason = refusal(client, f"user_id=ana&session_id={session_id}")
    assert code == 4400 and "starting with a letter or digit" in reason
    chat = client.post(
        "/api/chat", params={"user_id": "ana"}, json=CHAT | {"session_id": session_id}
    )
    assert chat.status_code == 422 and chat.json()["code"] == "invalid_message"
    if session_id not in (".", ".."):  # those two a URL resolves away before any route
        history = client.get(f"/api/history/{session_id}", params={"user_id": "ana"})
        assert history.status_code == 422


def test_finding_8_sockets_refused_or_only_opened_store_no_session(client: TestClient) -> None:
    # The fixture allows two sockets per user: the third is refused with 4429.
    with (
        client.websocket_connect("/ws/chat?user_id=ana&session_id=a") as first,
        client.websocket_connect("/ws/chat?user_id=ana&session_id=b") as second,
    ):
        first.receive_json()
        second.receive_json()
        assert refusal(client, "user_id=ana&session_id=c")[0] == 4429
    assert sessions(client, "ana") == []
    # Another user may open an unknown id too; it is not theirs until a chat is accepted.
    with client.websocket_connect("/ws/chat?user_id=bob&session_id=a") as third:
        assert third.receive_json()["type"] == "welcome"
    assert sessions(client, "bob") == []


def test_finding_8_a_refused_rest_chat_stores_no_session(client: TestClient) -> None:
    blank = client.post(
        "/api/chat", params={"user_id": "ana"}, json={"message": "  ", "session_id": "s2"}
    )
    assert blank.status_code == 422
    assert sessions(client, "ana") == []
    accepted = client.post("/api/chat", params={"user_id": "ana"}, json=CHAT | {"session_id": "s2"})
    assert accepted.status_code == 202
    assert sessions(client, "ana") == ["s2"]
    taken = client.post("/api/chat", params={"user_id": "bob"}, json=CHAT | {"session_id": "s2"})
    assert taken.status_code == 403 and taken.json()["code"] == "forbidden"
