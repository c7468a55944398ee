"""``chatrelay serve`` with ``model: auto``: the bundled local model answers in-process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest

from chatrelay.wire_client import WireClient
from tests import wsclient
from tests.fixtures.processes import Server, start_server
from tests.timing import seconds

# Pings answered while three sessions generate: the gateway kept answering. How fast
# each was answered is measured, not asserted: bench/local_model.py (issue 6's target).
MIN_PONGS_WHILE_GENERATING = 10
# The pinger's pace: the pause between pings is the probe's rhythm, not a wait. It stays
# within a socket's frame budget (CHATRELAY_FRAME_RATE_PER_SECOND, 10 by default).
PING_EVERY_SECONDS = 0.15


@pytest.fixture(scope="module")
def chatrelay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("chatrelay-local"),
        env={"CHATRELAY_MODEL": "auto", "CHATRELAY_MAX_TOKENS": "64"},
    )
    yield server
    server.process.stop()


def ids() -> tuple[str, str]:
    return f"user-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:12]}"


async def test_auto_answers_with_the_local_model(chatrelay: Server) -> None:
    user, session = ids()
    client = await wsclient.connect(chatrelay.ws, session_id=session, user_id=user)
    message_id = await client.chat("What is the capital of France? Answer in one sentence.")
    turn = await client.follow(message_id, timeout=seconds(60))
    await client.close()
    assert turn.complete is not None
    assert turn.complete["status"] == "completed", turn.complete
    assert turn.text.strip()
    assert turn.text == turn.complete["content"]
    usage = turn.complete.get("usage")
    print(f"\nlocal model through chatrelay: usage {usage}: {turn.text!r}")
    if usage is not None:
        assert usage["model"] == "SmolLM2-135M-Instruct"


async def test_pings_are_answered_while_several_sessions_generate(chatrelay: Server) -> None:
    chatters = []
    for question in ("Name three colours.", "Tell me about the sea.", "What is bread?"):
        user, session = ids()
        client = await wsclient.connect(chatrelay.ws, session_id=session, user_id=user)
        chatters.append((client, question))
    user, session = ids()
    pinger = await wsclient.connect(chatrelay.ws, session_id=session, user_id=user)

    async def chat(client: WireClient, question: str) -> str:
        # One model instance answers one session at a time: a session may wait for
        # the others' whole answers before its first chunk, so frames are awaited
        # with a long timeout each.
        message_id = await client.chat(question)
        text = ""
        while True:
            frame = await client.recv_type("chunk", "complete", timeout=seconds(60))
            if frame["message_id"] != message_id:
                continue
            if frame["type"] == "complete":
                assert frame["status"] == "completed", frame
                assert frame["content"] == text
                return text
            text += frame["delta"]

    answering = asyncio.gather(*(chat(client, question) for client, question in chatters))
    round_trips: list[float] = []
    while not answering.done():
        sent = time.monotonic()
        await pinger.send({"type": "ping"})
        await pinger.recv_type("pong")
        round_trips.append(time.monotonic() - sent)
        await asyncio.sleep(PING_EVERY_SECONDS)
    answers = await answering
    for client, _ in chatters:
        await client.close()
    await pinger.close()

    assert all(answer.strip() for answer in answers)
    assert len(round_trips) >= MIN_PONGS_WHILE_GENERATING
