"""The chat protocol and the REST API of the all-in-one app, in process."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from chatrelay.llm.simulated import LONG_ANSWER, choose_answer
from tests.app.inprocess import InProcessApp, new_session, new_user, running_app


async def test_a_chat_streams_in_order_and_is_stored(chat_app: InProcessApp) -> None:
    user, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=user)
    assert client.welcome["session_id"] == session
    assert client.welcome["user_id"] == user
    assert client.welcome["offset"] == 0
    assert client.welcome["protocol"] == 1

    message_id = await client.chat("hello there", client_id="c-1")
    turn = await client.follow(message_id)

    assert turn.complete is not None
    assert turn.complete["status"] == "completed"
    assert [chunk["seq"] for chunk in turn.chunks] == list(range(1, len(turn.chunks) + 1))
    assert turn.text == turn.complete["content"] == choose_answer("hello there")
    assert client.offsets() == list(range(1, len(client.offsets()) + 1))
    user_frame = next(f for f in client.frames if f["type"] == "message")
    assert user_frame["message"]["role"] == "user"
    assert user_frame["message"]["client_id"] == "c-1"

    stored = await chat_app.history(session, user)
    assert [(m["role"], m["content"], m["status"]) for m in stored] == [
        ("user", "hello there", "complete"),
        ("assistant", turn.text, "completed"),
    ]


async def test_every_socket_of_a_session_sees_the_whole_stream(chat_app: InProcessApp) -> None:
    user, session = new_user(), new_session()
    first = await chat_app.connect(session_id=session, user_id=user)
    second = await chat_app.connect(session_id=session, user_id=user)
    message_id = await first.chat("tell me something")
    seen_first = await first.follow(message_id)
    seen_second = await second.follow(message_id)
    assert seen_first.text == seen_second.text == choose_answer("tell me something")
    assert first.offsets() == second.offsets()


async def test_cancel_mid_stream_keeps_the_partial_text(chat_app: InProcessApp) -> None:
    user, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=user)
    message_id = await client.chat("please explain the stream")
    for _ in range(3):
        await client.recv_type("chunk")
    await client.send({"type": "cancel", "message_id": message_id})
    turn = await client.follow(message_id)

    assert turn.complete is not None
    assert turn.complete["status"] == "cancelled"
    seen = "".join(f["delta"] for f in client.frames if f["type"] == "chunk")
    assert turn.complete["content"] == seen
    assert 3 <= len(seen.split()) < len(LONG_ANSWER.split())
    assert LONG_ANSWER.startswith(seen)
    stored = await chat_app.history(session, user)
    assert (stored[-1]["status"], stored[-1]["content"]) == ("cancelled", seen)


async def test_cancel_through_rest_from_another_socket(chat_app: InProcessApp) -> None:
    user, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=user)
    message_id = await client.chat("explain it in detail")
    await client.recv_type("chunk")
    response = await chat_app.http.post(
        "/api/cancel",
        json={"session_id": session, "message_id": message_id},
        params={"user_id": user},
    )
    assert response.status_code == 200
    assert response.json() == {"status": "cancelled"}
    turn = await client.follow(message_id)
    assert turn.complete is not None and turn.complete["status"] == "cancelled"


async def test_a_second_chat_while_streaming_is_busy(chat_app: InProcessApp) -> None:
    user, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=user)
    message_id = await client.chat("explain everything")
    await client.send({"type": "chat", "content": "and another", "client_id": "c-2"})
    error = await client.recv_type("error")
    assert error["code"] == "busy"
    assert error["client_id"] == "c-2"
    turn = await client.follow(message_id)
    assert turn.complete is not None and turn.complete["status"] == "completed"
    # The session is free again once the first answer ends.
    second = await client.chat("hello again")
    assert (await client.follow(second)).text == choose_answer("hello again")


BAD_FRAMES = [
    ("not json at all", "bad_frame"),
    ("[1, 2, 3]", "bad_frame"),
    ('{"content": "no type"}', "bad_frame"),
    ('{"type": "shout"}', "unknown_type"),
    ('{"type": "chat", "content": ""}', "invalid_message"),
    ('{"type": "chat", "content": "   "}', "invalid_message"),
    ('{"type": "chat", "content": 42}', "invalid_message"),
    ('{"type": "chat"}', "invalid_message"),
    ('{"type": "chat", "content": "hi", "client_id": 7}', "invalid_message"),
    ('{"type": "cancel"}', "invalid_message"),
    ('{"type": "resume", "epoch": "x", "offset": -1}', "invalid_message"),
    ('{"type": "cancel", "message_id": "not-running"}', "not_found"),
]


@pytest.mark.parametrize(("raw", "code"), BAD_FRAMES)
async def test_bad_input_gets_its_code_and_the_socket_still_works(
    chat_app: InProcessApp, raw: str, code: str
) -> None:
    client = await chat_app.connect(session_id=new_session(), user_id=new_user())
    await client.send(raw)
    error = await client.recv_type("error")
    assert error["code"] == code, error
    assert error["detail"]
    await client.send({"type": "ping"})
    assert (await client.recv_type("pong"))["type"] == "pong"
    message_id = await client.chat("hello")
    assert (await client.follow(message_id)).complete is not None


async def test_a_too_long_message_is_refused_and_nothing_stored_is_lost(
    chat_app: InProcessApp,
) -> None:
    user, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=user)
    first = await client.follow(await client.chat("hello"))
    await client.send({"type": "chat", "content": "x" * 16_001, "client_id": "big"})
    error = await client.recv_type("error")
    assert (error["code"], error["client_id"]) == ("invalid_message", "big")
    stored = await chat_app.history(session, user)
    assert [m["content"] for m in stored] == ["hello", first.text]


async def test_rest_chat_streams_to_the_socket(chat_app: InProcessApp) -> None:
    user, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=user)
    response = await chat_app.http.post(
        "/api/chat",
        json={"message": "hello rest", "session_id": session},
        headers={"X-User-Id": user},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "streaming" and body["session_id"] == session
    turn = await client.follow(body["message_id"])
    assert turn.text == choose_answer("hello rest")
    assert turn.complete is not None and turn.complete["content"] == turn.text


async def test_rest_errors_have_codes(chat_app: InProcessApp) -> None:
    session = new_session()
    params = {"user_id": new_user()}
    post = chat_app.http.post
    empty = await post("/api/chat", json={"message": "", "session_id": session}, params=params)
    bad_session = await post(
        "/api/chat", json={"message": "hi", "session_id": "a b"}, params=params
    )
    missing = await post(
        "/api/cancel", json={"session_id": session, "message_id": "m"}, params=params
    )
    first = await post(
        "/api/chat", json={"message": "explain", "session_id": session}, params=params
    )
    busy = await post("/api/chat", json={"message": "again", "session_id": session}, params=params)
    await post(
        "/api/cancel",
        json={"session_id": session, "message_id": first.json()["message_id"]},
        params=params,
    )
    assert (empty.status_code, empty.json()["code"]) == (422, "invalid_message")
    assert (bad_session.status_code, bad_session.json()["code"]) == (422, "invalid_message")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert first.status_code == 202
    assert (busy.status_code, busy.json()["code"]) == (409, "busy")


async def test_a_session_belongs_to_its_creator(chat_app: InProcessApp) -> None:
    owner, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=owner)
    await client.follow(await client.chat("hello"))
    intruder = new_user()
    response = await chat_app.http.get(f"/api/history/{session}", params={"user_id": intruder})
    sessions = await chat_app.http.get("/api/sessions", params={"user_id": owner})
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    assert [s["id"] for s in sessions.json()["sessions"]] == [session]
    assert sessions.json()["sessions"][0]["title"] == "hello"

    refused = await chat_app.socket(session_id=session, user_id=intruder)
    with pytest.raises(ConnectionClosed) as closed:
        await refused.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_a_wrong_dev_token_is_refused(chat_app: InProcessApp) -> None:
    refused = await chat_app.socket(user_id="u1", token="wrong")
    with pytest.raises(ConnectionClosed) as closed:
        await refused.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_without_a_session_id_the_server_creates_one(chat_app: InProcessApp) -> None:
    client = await chat_app.connect(user_id=new_user())
    assert len(client.welcome["session_id"]) > 8


async def test_health_and_its_seed_alias(chat_app: InProcessApp) -> None:
    health = await chat_app.http.get("/health")
    alias = await chat_app.http.get("/actuator/health")
    workers = await chat_app.http.get("/api/health")
    assert health.status_code == alias.status_code == 200
    assert health.json()["status"] == "ok"
    assert alias.json()["node"] == health.json()["node"]
    assert workers.json()["workers"] == {"healthy": 1, "total": 1}


async def test_too_many_chats_are_rate_limited(tmp_path: Path) -> None:
    async with running_app(
        tmp_path / "limited.db", chat_rate_burst=2, chat_rate_per_second=0.01
    ) as limited:
        client = await limited.connect(session_id=new_session(), user_id=new_user())
        for text in ("hello one", "hello two"):
            await client.follow(await client.chat(text))
        await client.send({"type": "chat", "content": "hello three", "client_id": "c-3"})
        error = await client.recv_type("error")
        assert (error["code"], error["client_id"]) == ("rate_limited", "c-3")
        assert "retry in" in error["detail"]
        await client.send({"type": "ping"})
        assert (await client.recv_type("pong"))["type"] == "pong"
        other = await limited.connect(session_id=new_session(), user_id=new_user())
        assert (await other.follow(await other.chat("hello"))).complete is not None


def metric(text: str, name: str, missing: float | None = None) -> float:
    """The value of one sample line ``name value`` in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    if missing is not None:
        return missing  # a labelled counter has no sample before its first count
    raise AssertionError(f"{name} not in /metrics")


async def test_metrics_count_what_happened(chat_app: InProcessApp) -> None:
    before = (await chat_app.http.get("/metrics")).text
    client = await chat_app.connect(session_id=new_session(), user_id=new_user())
    turn = await client.follow(await client.chat("hello metrics"))
    during = (await chat_app.http.get("/metrics")).text
    relayed = metric(during, "chatrelay_chunks_relayed_total") - metric(
        before, "chatrelay_chunks_relayed_total"
    )
    # Every log frame written to the socket: 2 messages, the chunks, the complete.
    assert relayed >= len(turn.chunks) + 3
    completed = 'chatrelay_generations_total{status="completed"}'
    assert metric(during, completed) >= metric(before, completed, missing=0.0) + 1
    assert metric(during, "chatrelay_chunk_latency_seconds_count") >= len(turn.chunks)
    assert metric(during, "chatrelay_open_sockets") >= 1
