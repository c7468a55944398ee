"""Resume from an offset, reset on a foreign epoch, history mid-stream, drain: in process."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from chatrelay.llm.simulated import LONG_ANSWER
from tests.app.inprocess import InProcessApp, new_session, new_user
from tests.timing import seconds

CLOSE_RESTARTING = 1012


async def test_resume_replays_exactly_what_was_missed(chat_app: InProcessApp) -> None:
    user, session = new_user(), new_session()
    first = await chat_app.connect(session_id=session, user_id=user)
    message_id = await first.chat("hello")
    await first.follow(message_id)
    epoch = first.welcome["epoch"]
    await first.close()

    late = await chat_app.connect(session_id=session, user_id=user)
    assert late.welcome["epoch"] == epoch
    assert late.welcome["offset"] == first.offsets()[-1]
    await late.send({"type": "resume", "epoch": epoch, "offset": 2})
    replay = [await late.recv() for _ in range(len(first.offsets()) - 2)]
    assert [f["offset"] for f in replay] == first.offsets()[2:]
    assert [f["type"] for f in replay] == [
        f["type"] for f in first.frames if f["type"] in ("message", "chunk", "complete")
    ][2:]


async def test_a_foreign_epoch_gets_reset_and_history_has_the_answer(
    chat_app: InProcessApp,
) -> None:
    user, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=user)
    turn = await client.follow(await client.chat("hello"))
    await client.send({"type": "resume", "epoch": "some-other-epoch", "offset": 3})
    reset = await client.recv_type("reset")
    assert reset["epoch"] == client.welcome["epoch"]
    assert reset["offset"] == client.offsets()[-1]
    stored = await chat_app.history(session, user)
    assert stored[-1]["content"] == turn.text


async def test_history_shows_the_text_so_far_of_a_streaming_answer(
    chat_app: InProcessApp,
) -> None:
    user, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=user)
    message_id = await client.chat("explain slowly")
    for _ in range(5):
        await client.recv_type("chunk")
    streaming = (await chat_app.history(session, user))[-1]
    assert streaming["id"] == message_id and streaming["status"] == "streaming"
    assert len(streaming["content"].split()) >= 5
    assert LONG_ANSWER.startswith(streaming["content"])
    await client.send({"type": "cancel", "message_id": message_id})
    await client.follow(message_id)


async def test_a_drain_tells_sockets_to_reconnect_and_lets_the_answer_finish(
    chat_app: InProcessApp,
) -> None:
    # What SIGTERM starts in `chatrelay serve` (serving.py calls app.state.drain).
    user, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=user)
    message_id = await client.chat("explain the drain")
    await client.recv_type("chunk")
    drain = asyncio.create_task(chat_app.app.state.drain())
    reconnect = await client.recv_type("reconnect")
    assert reconnect["reason"]
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_RESTARTING
    refused = await chat_app.socket(session_id=session, user_id=user)
    with pytest.raises(ConnectionClosed) as busy:
        await refused.recv()
    assert busy.value.rcvd is not None and busy.value.rcvd.code == 1013  # draining: go elsewhere
    # The all-in-one drain waits for its running answer, which ends as it would have.
    async with asyncio.timeout(seconds(30)):
        await drain
    answer = (await chat_app.history(session, user))[-1]
    assert (answer["id"], answer["status"], answer["content"]) == (
        message_id,
        "completed",
        LONG_ANSWER,
    )
