"""The all-in-one app on an engine that loses live events: clients still see every chunk once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatrelay.llm.simulated import LONG_ANSWER, choose_answer, split_words
from chatrelay.wire_client import Turn, WireClient
from tests.app.inprocess import InProcessApp, new_session, new_user, running_app
from tests.faulty_engine import Faults, faulty_engine

# Live events lost in one go mid-answer: several chunks, as a dropped pub/sub connection loses.
LOST_IN_A_ROW = 5
# Short pauses between words: the long answer (~190 chunks) streams in a fraction of a second.
CHUNK_DELAY = 0.001


@pytest.fixture
def faults() -> Faults:
    """The engine the app runs on (the app closes it)."""
    return faulty_engine()


@pytest.fixture
async def faulty_app(tmp_path: Path, faults: Faults) -> AsyncIterator[InProcessApp]:
    async with running_app(
        tmp_path / "chatrelay.db", faults.engine, chunk_delay=CHUNK_DELAY
    ) as running:
        yield running


def assert_seen_once_in_order(client: WireClient, turn: Turn, answer: str) -> None:
    """Every frame of the turn arrived, once and in order, and the answer is whole."""
    assert turn.complete is not None and turn.complete["status"] == "completed"
    assert [chunk["seq"] for chunk in turn.chunks] == list(range(1, len(turn.chunks) + 1))
    assert turn.text == turn.complete["content"] == answer
    assert client.offsets() == list(range(1, len(client.offsets()) + 1))
    assert client.duplicates == 0


@pytest.mark.parametrize("then_reconnect", [False, True])
async def test_chunks_lost_live_mid_answer_reach_the_client_once_and_in_order(
    faulty_app: InProcessApp, faults: Faults, then_reconnect: bool
) -> None:
    user, session = new_user(), new_session()
    client = await faulty_app.connect(session_id=session, user_id=user)
    message_id = await client.chat("explain what happens when events are lost")
    await client.recv_type("chunk")
    faults.broker.drop_live(session, LOST_IN_A_ROW, then_reconnect=then_reconnect)
    turn = await client.follow(message_id)

    assert len(faults.broker.dropped) == LOST_IN_A_ROW
    assert_seen_once_in_order(client, turn, LONG_ANSWER)
    stored = await faulty_app.history(session, user)
    assert stored[-1]["content"] == LONG_ANSWER


async def test_a_turn_lost_live_to_its_end_reaches_the_client_once_the_subscription_is_back(
    faulty_app: InProcessApp, faults: Faults
) -> None:
    # Every event of the turn lost live, its `complete` last: no later event reveals
    # the gap, only the re-established subscription does.
    user, session = new_user(), new_session()
    client = await faulty_app.connect(session_id=session, user_id=user)
    question = "hello"
    turn_events = 2 + len(split_words(choose_answer(question))) + 1  # messages, chunks, complete
    faults.broker.drop_live(session, turn_events, then_reconnect=True)
    message_id = await client.chat(question)
    turn = await client.follow(message_id)

    assert len(faults.broker.dropped) == turn_events
    assert_seen_once_in_order(client, turn, choose_answer(question))
