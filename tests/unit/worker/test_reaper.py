"""``Reaper``: answers whose worker died are ended ``interrupted``, by one node at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import pytest

from chatrelay.protocol.client_frames import generation_lease_key
from chatrelay.protocol.server_frames import chunk_frame, message_frame
from chatrelay.store.conversations import ConversationStore
from chatrelay.store.records import MessageRecord
from chatrelay.worker import reaper as reaper_module
from chatrelay.worker.generation import Generations
from chatrelay.worker.reaper import INTERRUPTED_REASON, REAPER_LEASE_KEY, Reaper
from tests.faulty_engine import Faults
from tests.scripted_model import ScriptedModel
from tests.timing import wait_until
from tests.unit.worker.conftest import MAX_EVENTS
from tests.unit.worker.test_generation import CONFIG, one_more_chunk, stream_until

DELTAS = ["Once ", "upon ", "a ", "time ", "there ", "was ", "a ", "log ", "that ", "ended."]
# Scans this often in the tests that run the reaper's loop (1 s in production).
QUICK_SCAN_SECONDS = 0.01


async def orphan(
    faults: Faults,
    store: ConversationStore,
    message_id: str,
    deltas: Sequence[str],
    session_id: str = "s-orphan",
) -> None:
    """An answer stored ``streaming`` and logged up to ``deltas``, whose worker is gone."""
    turn = await store.begin_turn(
        session_id=session_id,
        user_id="user-1",
        user_message_id=f"question-of-{message_id}",
        content="tell me a story",
        client_id=None,
        assistant_id=message_id,
        history_limit=20,
    )
    assert turn.user_message is not None and turn.assistant_message is not None
    broker = faults.engine.broker
    await broker.publish(session_id, message_frame(turn.user_message))
    await broker.publish(session_id, message_frame(turn.assistant_message))
    for seq, delta in enumerate(deltas, start=1):
        await broker.publish(session_id, chunk_frame(message_id, seq, delta, 0.0))


async def stored(store: ConversationStore, message_id: str) -> MessageRecord:
    message = await store.get_message(message_id)
    assert message is not None
    return message


async def last_frame(faults: Faults, session_id: str = "s-orphan") -> dict[str, Any]:
    history = await faults.engine.broker.history(session_id)
    frame: dict[str, Any] = orjson.loads(history.events[-1].data)
    return frame


async def test_an_orphan_is_ended_interrupted_with_the_text_of_the_log(
    faults: Faults, store: ConversationStore
) -> None:
    await orphan(faults, store, "answer-1", DELTAS[:3])
    reaper = Reaper(faults.engine, store, "node-1")
    assert await reaper.reap_once() == 1

    text = "".join(DELTAS[:3])
    answer = await stored(store, "answer-1")
    assert (answer.status, answer.content, answer.error) == (
        "interrupted",
        text,
        INTERRUPTED_REASON,
    )
    complete = await last_frame(faults)
    assert (complete["type"], complete["message_id"], complete["status"], complete["content"]) == (
        "complete",
        "answer-1",
        "interrupted",
        text,
    )
    assert await reaper.reap_once() == 0  # ended once
    assert reaper.reaped == 1


async def test_an_answer_whose_lease_is_held_is_left_alone(
    faults: Faults, store: ConversationStore
) -> None:
    await orphan(faults, store, "answer-1", DELTAS[:2])
    key = generation_lease_key("s-orphan")
    lease = await faults.engine.coordination.acquire(key, 30.0, "answer-1")
    assert lease is not None
    reaper = Reaper(faults.engine, store, "node-1")
    assert await reaper.reap_once() == 0
    assert (await stored(store, "answer-1")).status == "streaming"
    assert (await last_frame(faults))["type"] == "chunk"

    # The session's lease held by a newer answer: this one's worker is gone after all.
    await faults.engine.coordination.release(lease)
    assert await faults.engine.coordination.acquire(key, 30.0, "answer-2")
    assert await reaper.reap_once() == 1
    assert (await stored(store, "answer-1")).status == "interrupted"


async def test_a_generation_fenced_out_of_its_session_is_ended_by_the_reaper(
    faults: Faults, store: ConversationStore
) -> None:
    model = ScriptedModel(DELTAS, gated=True)
    generations = Generations(faults.engine, store, model, CONFIG)
    await stream_until(generations, model, 2)
    await faults.coordination.expire(generation_lease_key("s-generation"))
    await one_more_chunk(generations, model)

    assert await Reaper(faults.engine, store, "node-1").reap_once() == 1
    text = "".join(DELTAS[:2])
    assert (await stored(store, "answer-1")).content == text
    complete = await last_frame(faults, "s-generation")
    assert (complete["status"], complete["content"]) == ("interrupted", text)


async def test_the_store_checkpoint_is_used_when_the_log_was_lost(
    faults: Faults, store: ConversationStore
) -> None:
    await orphan(faults, store, "answer-1", DELTAS[:6])
    await store.save_progress("answer-1", "".join(DELTAS[:4]))
    faults.broker.lose_logs()  # the engine restarted empty
    assert await Reaper(faults.engine, store, "node-1").reap_once() == 1
    assert (await stored(store, "answer-1")).content == "".join(DELTAS[:4])


async def test_the_store_checkpoint_is_used_when_the_log_was_trimmed(
    faults: Faults, store: ConversationStore
) -> None:
    # The log keeps its last MAX_EVENTS events: both message frames and the first
    # chunks are gone, the chunks it still holds are the end of the answer.
    assert len(DELTAS) + 2 > MAX_EVENTS
    await orphan(faults, store, "answer-1", DELTAS)
    checkpoint = "".join(DELTAS[:9])
    await store.save_progress("answer-1", checkpoint)
    assert await Reaper(faults.engine, store, "node-1").reap_once() == 1
    assert (await stored(store, "answer-1")).content == checkpoint


async def test_a_trimmed_log_never_puts_the_end_of_an_answer_in_its_place(
    faults: Faults, store: ConversationStore
) -> None:
    await orphan(faults, store, "answer-1", DELTAS)
    checkpoint = "".join(DELTAS[:4])  # shorter than the chunks the trimmed log still holds
    await store.save_progress("answer-1", checkpoint)
    assert await Reaper(faults.engine, store, "node-1").reap_once() == 1
    assert (await stored(store, "answer-1")).content == checkpoint


@pytest.fixture
def quick_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reaper_module, "SCAN_INTERVAL_SECONDS", QUICK_SCAN_SECONDS)


@pytest.fixture
async def reapers(
    faults: Faults, store: ConversationStore, quick_scans: None
) -> AsyncIterator[tuple[Reaper, Reaper]]:
    """Two nodes' reapers on one engine; the first leads (it started first)."""
    first, second = Reaper(faults.engine, store, "node-1"), Reaper(faults.engine, store, "node-2")
    first.start()

    async def first_leads() -> bool:
        return await faults.engine.coordination.lease_holder(REAPER_LEASE_KEY) == "node-1"

    await wait_until(first_leads, "the first reaper takes the reaper lease")
    second.start()
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_only_the_holder_of_the_reaper_lease_reaps(
    reapers: tuple[Reaper, Reaper], faults: Faults, store: ConversationStore
) -> None:
    first, second = reapers
    for index in range(3):
        await orphan(faults, store, f"answer-{index}", DELTAS[:2], session_id=f"s-{index}")

    async def none_streaming() -> bool:
        return await store.streaming_messages() == []

    await wait_until(none_streaming, "the orphans are reaped")
    assert (first.reaped, second.reaped) == (3, 0)

    await first.aclose()  # gives the reaper lease back: the other node takes over
    await orphan(faults, store, "answer-late", DELTAS[:2], session_id="s-late")
    await wait_until(none_streaming, "the late orphan is reaped")
    assert (first.reaped, second.reaped) == (3, 1)
    assert await faults.engine.coordination.lease_holder(REAPER_LEASE_KEY) == "node-2"
