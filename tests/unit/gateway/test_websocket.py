"""One socket from accept to close, in-process: frames both ways, drain, the log lines."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect


def test_frames_flow_both_ways_and_bad_input_is_survived(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat?user_id=ana&session_id=s1") as websocket:
        websocket.receive_json()
        websocket.send_text("{")
        assert websocket.receive_json()["code"] == "bad_frame"
        websocket.send_json({"type": "ping"})
        assert websocket.receive_json() == {"type": "pong"}


def test_a_drain_sends_reconnect_then_closes_1012_and_refuses_new_sockets(
    client: TestClient,
) -> None:
    with client.websocket_connect("/ws/chat?user_id=ana&session_id=s1") as websocket:
        websocket.receive_json()
        client.portal.call(client.app.state.drain)  # type: ignore[union-attr, attr-defined]
        assert websocket.receive_json() == {"type": "reconnect", "reason": "node draining"}
        with pytest.raises(WebSocketDisconnect) as closed:
            websocket.receive_json()
        assert (closed.value.code, closed.value.reason) == (1012, "node draining")
    with client.websocket_connect("/ws/chat?user_id=ana&session_id=s2") as refused:
        with pytest.raises(WebSocketDisconnect) as closed:
            refused.receive_json()
        assert closed.value.code == 1013
    health = client.get("/health")
    assert (health.status_code, health.json()["status"]) == (503, "draining")


def test_connect_and_disconnect_are_logged_with_node_session_user_and_code(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chatrelay.gateway.websocket")
    with client.websocket_connect("/ws/chat?user_id=ana&session_id=s1") as websocket:
        websocket.receive_json()
        # The server ends the socket itself (the test client would cancel it on leaving),
        # and the drain returns once it is gone.
        client.portal.call(client.app.state.drain)  # type: ignore[union-attr, attr-defined]
    records = [r for r in caplog.records if r.name == "chatrelay.gateway.websocket"]
    assert [r.getMessage() for r in records] == ["WebSocket connected", "WebSocket disconnected"]
    for record in records:
        assert (record.node, record.session_id, record.user_id) == ("node-t", "s1", "ana")  # type: ignore[attr-defined]
    assert records[1].code == 1012  # type: ignore[attr-defined]
