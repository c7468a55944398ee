"""``Generations``: one answer streamed into a session's log, ended the same way on every path."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from chatrelay.exceptions import Busy, EngineError, Forbidden, NotFound, Unavailable
from chatrelay.llm.base import Turn
from chatrelay.protocol.client_frames import generation_lease_key
from chatrelay.rest import CancelRequest, GenerationRequest
from chatrelay.store.conversations import ConversationStore
from chatrelay.store.records import MessageRecord
from chatrelay.worker.generation import GenerationConfig, Generations
from tests.faulty_engine import Faults
from tests.scripted_model import FAILURE_DETAIL, ScriptedModel

DELTAS = ["One ", "two ", "three ", "four ", "five."]
SESSION = "s-generation"
USER = "user-1"
LEASE_KEY = generation_lease_key(SESSION)
CONFIG = GenerationConfig(
    node_id="worker-1",
    lease_ttl=30.0,  # never runs out by itself during a test: expiry is injected
    system_prompt="Be brief.",
    history_turns=20,
    context_tokens=4096,
    max_tokens=512,
    checkpoint_seconds=0,
)


def request(message: str = "count to five", message_id: str = "answer-1") -> GenerationRequest:
    return GenerationRequest(
        session_id=SESSION,
        user_id=USER,
        message=message,
        message_id=message_id,
        user_message_id=f"question-of-{message_id}",
        client_id=None,
    )


async def logged(faults: Faults) -> list[dict[str, Any]]:
    """Every frame the session's log holds, offset included."""
    history = await faults.engine.broker.history(SESSION)
    return [orjson.loads(event.data) for event in history.events]


async def stored(store: ConversationStore, message_id: str = "answer-1") -> MessageRecord:
    message = await store.get_message(message_id)
    assert message is not None
    return message


async def lease_is_free(faults: Faults) -> bool:
    return await faults.engine.coordination.lease_holder(LEASE_KEY) is None


async def assert_ended(
    faults: Faults, store: ConversationStore, status: str, text: str
) -> MessageRecord:
    """The answer ended ``status`` with ``text``: in its ``complete``, in the store, lease free.

    Returns the stored answer.
    """
    frames = await logged(faults)
    chunks = [frame["delta"] for frame in frames if frame["type"] == "chunk"]
    assert "".join(chunks) == text
    complete = frames[-1]
    assert (complete["type"], complete["status"], complete["content"]) == (
        "complete",
        status,
        text,
    )
    answer = await stored(store)
    assert (answer.status, answer.content) == (status, text)
    assert await lease_is_free(faults)
    return answer


async def stream_until(generations: Generations, model: ScriptedModel, chunks: int) -> None:
    """Start the answer and let ``chunks`` of it be published; the model then waits."""
    await generations.start(request())
    model.allow(chunks)
    await model.paused_before(chunks)


async def one_more_chunk(generations: Generations, model: ScriptedModel) -> None:
    """Let the model yield one more delta, and the generation end however it ends."""
    model.allow(1)
    await generations.wait_idle()


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel(DELTAS)


@pytest.fixture
async def running(
    faults: Faults, store: ConversationStore, model: ScriptedModel
) -> AsyncIterator[Generations]:
    generations = Generations(faults.engine, store, model, CONFIG)
    yield generations
    await generations.aclose()


@pytest.fixture
def gated() -> ScriptedModel:
    return ScriptedModel(DELTAS, gated=True)


@pytest.fixture
async def stepped(
    faults: Faults, store: ConversationStore, gated: ScriptedModel
) -> AsyncIterator[Generations]:
    """Generations whose model yields a delta only when the test allows it."""
    generations = Generations(faults.engine, store, gated, CONFIG)
    yield generations
    await generations.aclose()


async def test_a_turn_is_published_in_order_and_stored(
    running: Generations, faults: Faults, store: ConversationStore
) -> None:
    accepted = await running.start(request())
    assert (accepted.message_id, accepted.user_message_id) == ("answer-1", "question-of-answer-1")
    await running.wait_idle()

    frames = await logged(faults)
    assert [frame["offset"] for frame in frames] == list(range(1, len(DELTAS) + 4))
    assert [frame["type"] for frame in frames] == ["message", "message"] + ["chunk"] * len(
        DELTAS
    ) + ["complete"]
    assert frames[0]["message"]["role"] == "user"
    assert frames[1]["message"]["role"] == "assistant"
    chunks = frames[2:-1]
    assert [chunk["seq"] for chunk in chunks] == list(range(1, len(DELTAS) + 1))
    assert [chunk["delta"] for chunk in chunks] == DELTAS
    complete = frames[-1]
    assert (complete["status"], complete["content"]) == ("completed", "".join(DELTAS))
    assert complete["usage"]["tokens"] == len(DELTAS)

    answer = await stored(store)
    assert (answer.status, answer.content, answer.model) == (
        "completed",
        "".join(DELTAS),
        "scripted",
    )
    question = await stored(store, "question-of-answer-1")
    assert (question.role, question.content) == ("user", "count to five")
    assert await lease_is_free(faults)


async def test_the_model_sees_the_system_prompt_and_earlier_turns(
    running: Generations, model: ScriptedModel
) -> None:
    await running.start(request("first question", "answer-1"))
    await running.wait_idle()
    await running.start(request("second question", "answer-2"))
    await running.wait_idle()
    assert model.conversations[-1] == [
        Turn("system", "Be brief."),
        Turn("user", "first question"),
        Turn("assistant", model.answer),
        Turn("user", "second question"),
    ]


async def test_a_held_session_is_busy_and_nothing_is_stored(
    running: Generations, faults: Faults, store: ConversationStore
) -> None:
    other = await faults.engine.coordination.acquire(LEASE_KEY, 30.0, "another-answer")
    assert other is not None
    with pytest.raises(Busy):
        await running.start(request())
    assert await store.history(SESSION) == []
    assert await faults.engine.coordination.lease_holder(LEASE_KEY) == "another-answer"


async def test_a_repeated_request_starts_nothing_new(
    stepped: Generations, gated: ScriptedModel, faults: Faults, store: ConversationStore
) -> None:
    await stepped.start(request())
    again = await stepped.start(request())  # while it runs: the lease names this answer
    assert again.message_id == "answer-1"
    assert stepped.running_count == 1
    gated.allow(len(DELTAS))
    await stepped.wait_idle()
    await stepped.start(request())  # after it ended: the store already has the answer
    assert stepped.running_count == 0
    assert len(await store.history(SESSION)) == 2
    assert len(gated.conversations) == 1
    assert await lease_is_free(faults)


async def test_a_cancel_through_the_engine_stops_within_one_chunk(
    stepped: Generations, gated: ScriptedModel, faults: Faults, store: ConversationStore
) -> None:
    await stream_until(stepped, gated, 2)
    # As a gateway on another node does: only the engine knows.
    await faults.engine.coordination.request_cancel(SESSION, "answer-1")
    await one_more_chunk(stepped, gated)
    await assert_ended(faults, store, "cancelled", "".join(DELTAS[:3]))
    assert gated.closed.is_set()  # the model was told to stop


async def test_cancel_stops_a_running_answer_and_refuses_an_unknown_one(
    stepped: Generations, gated: ScriptedModel, faults: Faults, store: ConversationStore
) -> None:
    cancel = CancelRequest(session_id=SESSION, message_id="answer-1")
    with pytest.raises(NotFound):
        await stepped.cancel(cancel)
    await stream_until(stepped, gated, 1)
    await stepped.cancel(cancel)
    await one_more_chunk(stepped, gated)
    await assert_ended(faults, store, "cancelled", "".join(DELTAS[:2]))


@pytest.mark.parametrize(
    ("failure", "error"),
    [(None, FAILURE_DETAIL), (RuntimeError("a bug"), "the model failed: RuntimeError")],
)
async def test_a_model_that_fails_mid_answer_ends_failed_with_its_text(
    faults: Faults, store: ConversationStore, failure: Exception | None, error: str
) -> None:
    model = ScriptedModel(DELTAS, fail_before=2, failure=failure)
    generations = Generations(faults.engine, store, model, CONFIG)
    await generations.start(request())
    await generations.wait_idle()
    answer = await assert_ended(faults, store, "failed", "".join(DELTAS[:2]))
    assert answer.error == (await logged(faults))[-1]["error"] == error


async def test_a_chunk_whose_publish_failed_is_not_in_the_stored_answer(
    stepped: Generations, gated: ScriptedModel, faults: Faults, store: ConversationStore
) -> None:
    await stream_until(stepped, gated, 2)
    faults.broker.fail_publishes(1)  # the third chunk's
    await one_more_chunk(stepped, gated)
    answer = await assert_ended(faults, store, "failed", "".join(DELTAS[:2]))
    assert answer.error is not None and answer.error.startswith("the engine failed")


async def test_a_generation_that_lost_its_lease_publishes_nothing_more(
    stepped: Generations, gated: ScriptedModel, faults: Faults, store: ConversationStore
) -> None:
    await stream_until(stepped, gated, 2)
    await faults.coordination.expire(LEASE_KEY)  # the worker was paused past its TTL
    assert await faults.engine.coordination.acquire(LEASE_KEY, 30.0, "the-next-answer")
    await one_more_chunk(stepped, gated)

    frames = await logged(faults)
    assert [frame["type"] for frame in frames] == ["message", "message", "chunk", "chunk"]
    # Not ended by the fenced-out worker: the reaper ends it (see test_reaper.py).
    assert (await stored(store)).status == "streaming"
    assert await faults.engine.coordination.lease_holder(LEASE_KEY) == "the-next-answer"


async def test_an_end_stored_after_the_lease_ran_out_is_still_published(
    stepped: Generations,
    gated: ScriptedModel,
    faults: Faults,
    store: ConversationStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store was slow: the lease expired while the answer's end was being stored.
    The end is stored (it is this worker's: the store ends a message once, and the reaper
    leaves ended messages alone), so its ``complete`` must reach the tabs all the same."""
    finish = store.finish_message

    async def slow_finish(message_id: str, **end: Any) -> bool:
        await faults.coordination.expire(LEASE_KEY)
        return await finish(message_id, **end)

    monkeypatch.setattr(store, "finish_message", slow_finish)
    await stream_until(stepped, gated, len(DELTAS) - 1)
    await one_more_chunk(stepped, gated)
    await assert_ended(faults, store, "completed", "".join(DELTAS))


async def test_an_answer_ended_by_someone_else_gets_no_second_end(
    stepped: Generations, gated: ScriptedModel, faults: Faults, store: ConversationStore
) -> None:
    await stream_until(stepped, gated, 2)
    # The reaper's view: stored as interrupted while the worker still streams.
    assert await store.finish_message("answer-1", status="interrupted", content="One two ")
    gated.allow(len(DELTAS) - 2)
    await stepped.wait_idle()
    frames = await logged(faults)
    assert [frame["type"] for frame in frames].count("complete") == 0
    assert (await stored(store)).status == "interrupted"
    assert await lease_is_free(faults)


async def test_aclose_interrupts_a_running_answer_and_stores_its_text(
    stepped: Generations, gated: ScriptedModel, faults: Faults, store: ConversationStore
) -> None:
    await stream_until(stepped, gated, 1)
    await stepped.aclose()
    answer = await assert_ended(faults, store, "interrupted", DELTAS[0])
    assert answer.error == "the worker shut down"
    with pytest.raises(Unavailable):
        await stepped.start(request(message_id="answer-2"))


async def test_a_failed_start_releases_the_lease(
    running: Generations, faults: Faults, store: ConversationStore
) -> None:
    await store.claim_session(SESSION, "someone-else")
    with pytest.raises(Forbidden):
        await running.start(request())
    assert await lease_is_free(faults)

    faults.broker.fail_publishes(1)  # the user's message cannot be published
    with pytest.raises(EngineError):
        await running.start(request().model_copy(update={"session_id": "s-free"}))
    assert await faults.engine.coordination.lease_holder(generation_lease_key("s-free")) is None


async def test_a_running_answer_is_checkpointed_in_the_store(
    faults: Faults, store: ConversationStore, gated: ScriptedModel
) -> None:
    checkpointing = dataclasses.replace(CONFIG, checkpoint_seconds=1e-9)
    generations = Generations(faults.engine, store, gated, checkpointing)
    await stream_until(generations, gated, 2)
    answer = await stored(store)
    assert (answer.status, answer.content) == ("streaming", "".join(DELTAS[:2]))
    gated.allow(len(DELTAS))
    await generations.wait_idle()
    assert (await stored(store)).content == "".join(DELTAS)
