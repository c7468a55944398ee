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
    with client.websocket_connect("/ws/chat?user_id=ana&session_id=mine") as websocket:
        websocket.receive_json()
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
