"""The cluster view's REST routes on the all-in-one app (dev auth mode), in process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatrelay.llm.simulated import LONG_ANSWER
from tests.app.inprocess import NODE_ID, InProcessApp, new_session, new_user, running_app
from tests.timing import wait_until


async def cluster(app: InProcessApp) -> dict[str, Any]:
    response = await app.http.get("/api/admin/cluster")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_view_shows_both_halves_of_the_node_and_a_streaming_answer_until_cancelled(
    tmp_path: Path,
) -> None:
    # Slow words (~10 s for the long answer): the answer streams across several reports.
    async with running_app(tmp_path / "chat.db", chunk_delay=0.05) as app:
        user, session = new_user(), new_session()
        client = await app.connect(session_id=session, user_id=user)
        message_id = await client.chat("please explain the stream")
        await client.recv_type("chunk")

        async def listed() -> bool:
            return [s["message_id"] for s in (await cluster(app))["sessions"]] == [message_id]

        await wait_until(listed, "the streaming answer in the cluster view")
        view = await cluster(app)
        assert view["node"] == NODE_ID
        assert [(n["kind"], n["node_id"], n["state"]) for n in view["nodes"]] == [
            ("gateway", NODE_ID, "up"),
            ("worker", NODE_ID, "up"),
        ]
        gateway, worker = view["nodes"]
        assert (gateway["sockets"], gateway["engine"], gateway["store"]) == (1, "up", "up")
        assert gateway["workers"][0]["state"] == "up" and gateway["cooled_down"] == []
        assert worker["running"] == 1 and worker["model"] == "simulated"
        assert worker["history"] and worker["history"][-1][2] == 1  # [t, sockets, running, ...]
        (streaming,) = view["sessions"]
        assert streaming["session_id"] == session and streaming["user_id"] == user
        assert (streaming["worker"], streaming["gateways"]) == (NODE_ID, [NODE_ID])

        cancelled = await app.http.post(
            "/api/admin/cancel", json={"session_id": session, "message_id": message_id}
        )
        assert cancelled.json() == {"status": "cancelled"}
        turn = await client.follow(message_id)
        assert turn.complete is not None and turn.complete["status"] == "cancelled"
        assert len(turn.complete["content"]) < len(LONG_ANSWER)

        async def gone() -> bool:
            return (await cluster(app))["sessions"] == []

        await wait_until(gone, "the cancelled answer leaving the cluster view")


async def test_dev_mode_answers_loopback_callers_only(chat_app: InProcessApp) -> None:
    proxied = await chat_app.http.get(
        "/api/admin/cluster", headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.1"}
    )
    assert proxied.status_code == 403
    assert proxied.json()["code"] == "forbidden"
    assert "loopback" in proxied.json()["detail"]
    local = await chat_app.http.get(
        "/api/admin/cluster", headers={"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "::1"}
    )
    assert local.status_code == 200


async def test_cancelling_what_does_not_run_is_not_found(chat_app: InProcessApp) -> None:
    response = await chat_app.http.post(
        "/api/admin/cancel", json={"session_id": new_session(), "message_id": "m-none"}
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
