"""Issue 17's socket findings, reproduced against the in-process app: each test is named
after its finding and failed before the fix."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from websockets.exceptions import ConnectionClosed

from chatrelay.gateway import close_codes
from chatrelay.protocol.server_frames import ServerFrame
from chatrelay.wire_client import WireClient, log_offset
from tests.app.inprocess import InProcessApp, new_session, new_user

RESUMES = 200


async def frames_until_closed(client: WireClient) -> tuple[list[ServerFrame], int | None]:
    """Every frame the server sends until it closes the socket, and the close code."""
    frames: list[ServerFrame] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            frames.append(await client.recv())
    return frames, None if closed.value.rcvd is None else closed.value.rcvd.code


async def sessions(chat_app: InProcessApp, user: str) -> list[str]:
    response = await chat_app.http.get("/api/sessions", params={"user_id": user})
    assert response.status_code == 200, response.text
    return [session["id"] for session in response.json()["sessions"]]


async def test_finding_4_two_hundred_resumes_cost_a_bounded_number_of_frames(
    chat_app: InProcessApp,
) -> None:
    user, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=user)
    await client.follow(await client.chat("hello"))
    events = len(client.offsets())
    resume = {"type": "resume", "epoch": client.epoch, "offset": 0}
    for _ in range(RESUMES):
        await client.send(resume)
    frames, code = await frames_until_closed(client)
    # Before the fix every resume replayed the whole log: RESUMES * events frames.
    replayed = [offset for frame in frames if (offset := log_offset(frame)) is not None]
    assert len(replayed) == len(set(replayed)) <= events
    refused = [frame for frame in frames if frame.get("code") == "rate_limited"]
    assert refused and "retry in" in refused[0]["detail"]
    assert len(frames) <= events + chat_app.settings.frame_flood_limit
    assert code == close_codes.FLOODING


async def test_finding_4_normal_chat_traffic_is_never_limited(chat_app: InProcessApp) -> None:
    user, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=user)
    for question in ("hello", "and then?", "thanks"):
        await client.send({"type": "ping"})
        await client.recv_type("pong")
        await client.follow(await client.chat(question))
    await client.resume(client.epoch or "", 0)
    await client.send({"type": "ping"})
    await client.recv_type("pong")
    assert [frame for frame in client.frames if frame["type"] == "error"] == []


def latency_observations() -> float:
    return REGISTRY.get_sample_value("chatrelay_chunk_latency_seconds_count") or 0.0


async def test_finding_9_replayed_events_do_not_count_toward_chunk_latency(
    chat_app: InProcessApp,
) -> None:
    user, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=user)
    before = latency_observations()
    await client.follow(await client.chat("hello"))
    await client.send({"type": "ping"})  # the pong is written after every chunk's observation
    await client.recv_type("pong")
    live = latency_observations()
    assert live > before
    late = await chat_app.connect(session_id=session, user_id=user)  # as a page reload does
    await late.resume(late.epoch or "", 0)
    await late.send({"type": "ping"})
    await late.recv_type("pong")
    assert late.offsets() == client.offsets()  # the whole log was replayed
    assert latency_observations() == live


async def test_finding_8_opening_sockets_stores_no_session(chat_app: InProcessApp) -> None:
    user = new_user()
    for _ in range(5):
        client = await chat_app.connect(user_id=user)
        await client.close()
    assert await sessions(chat_app, user) == []
    client = await chat_app.connect(user_id=user)
    await client.follow(await client.chat("hello"))
    assert await sessions(chat_app, user) == [client.welcome["session_id"]]  # type: ignore[index]


async def test_finding_8_two_users_racing_the_first_chat_one_wins(chat_app: InProcessApp) -> None:
    session = new_session()
    users = [new_user(), new_user()]
    answers = await asyncio.gather(
        *(
            chat_app.http.post(
                "/api/chat", params={"user_id": user}, json={"message": "hi", "session_id": session}
            )
            for user in users
        )
    )
    assert sorted(answer.status_code for answer in answers) == [202, 403]
    winner = users[[answer.status_code for answer in answers].index(202)]
    assert [await sessions(chat_app, user) for user in users].count([session]) == 1
    assert await sessions(chat_app, winner) == [session]


async def test_finding_8_a_socket_opened_before_the_owner_sees_nothing_and_is_closed(
    chat_app: InProcessApp,
) -> None:
    owner, eavesdropper, session = new_user(), new_user(), new_session()
    early = await chat_app.connect(session_id=session, user_id=eavesdropper)
    client = await chat_app.connect(session_id=session, user_id=owner)
    await client.follow(await client.chat("my secret plans"))
    frames, code = await frames_until_closed(early)
    assert frames == []
    assert code == close_codes.FORBIDDEN


@pytest.mark.parametrize(
    "body",
    [
        '{"message": "a NUL \\u0000 here", "session_id": "s-nul"}',
        '{"message": "a lone \\ud800 here", "session_id": "s-nul"}',
    ],
)
async def test_finding_7_rest_refuses_text_the_stores_cannot_keep(
    chat_app: InProcessApp, body: str
) -> None:
    user = new_user()
    response = await chat_app.http.post(
        "/api/chat",
        params={"user_id": user},
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_message"
    assert await sessions(chat_app, user) == []


async def test_finding_7_a_nul_over_the_socket_is_refused_and_the_socket_stays_open(
    chat_app: InProcessApp,
) -> None:
    client = await chat_app.connect(session_id=new_session(), user_id=new_user())
    await client.send({"type": "chat", "content": "a NUL \x00 here", "client_id": "c-1"})
    error = await client.recv_type("error")
    assert (error["code"], error.get("client_id")) == ("invalid_message", "c-1")
    await client.send('{"type": {}}')
    assert (await client.recv_type("error"))["code"] == "bad_frame"
    await client.follow(await client.chat("hello"))
