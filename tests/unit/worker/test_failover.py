"""Failover decisions: which orphan is continued, with what, and how the model goes on."""

from __future__ import annotations

import orjson
import pytest

from chatrelay.exceptions import Busy, Unavailable
from chatrelay.llm.base import GenerationParams, Turn
from chatrelay.llm.openai_compat import _RepeatedPrefix
from chatrelay.llm.simulated import LONG_ANSWER, SimulatedModel, split_words
from chatrelay.protocol.client_frames import generation_lease_key
from chatrelay.store.conversations import ConversationStore
from chatrelay.worker.generation import Continuation, Generations
from chatrelay.worker.reaper import FailoverPolicy, Reaper
from tests.faulty_engine import Faults
from tests.timing import wait_until
from tests.unit.worker.test_generation import CONFIG
from tests.unit.worker.test_reaper import DELTAS, orphan, stored

QUESTION = "explain the journey of a chunk"


@pytest.mark.parametrize(
    ("policy", "usage", "expected"),
    [
        (FailoverPolicy(), None, True),
        (FailoverPolicy(), {"continued": 1}, True),
        (FailoverPolicy(), {"continued": 2}, False),
        (FailoverPolicy(max_continuations=0), None, False),
        (FailoverPolicy(continue_answers=False), None, False),
    ],
)
def test_an_orphan_is_continued_until_the_limit(
    policy: FailoverPolicy, usage: dict[str, int] | None, expected: bool
) -> None:
    assert policy.should_continue(usage) is expected


async def test_the_reaper_hands_an_orphan_on_with_its_text_seq_and_offset(
    faults: Faults, store: ConversationStore
) -> None:
    await orphan(faults, store, "answer-1", DELTAS[:3])
    handed: list[Continuation] = []

    async def take(continuation: Continuation) -> None:
        handed.append(continuation)

    reaper = Reaper(faults.engine, store, "node-1", FailoverPolicy(), take)
    assert await reaper.reap_once() == 0  # continued, not ended
    (continuation,) = handed
    assert (continuation.prefix, continuation.seq, continuation.continued) == (
        "".join(DELTAS[:3]),
        3,
        1,
    )
    assert continuation.resumed == [{"seq": 3, "offset": 5}]  # 2 message frames, 3 chunks
    assert continuation.user_id == "user-1"
    answer = await stored(store, "answer-1")
    assert answer.status == "streaming"
    assert answer.usage == {"continued": 1, "resumed": [{"seq": 3, "offset": 5}]}

    # It died too, and again: past the limit the answer ends interrupted, the count kept.
    assert await reaper.reap_once() == 0
    assert await reaper.reap_once() == 1
    assert len(handed) == 2
    answer = await stored(store, "answer-1")
    assert answer.status == "interrupted" and answer.content == "".join(DELTAS[:3])
    assert answer.usage is not None and answer.usage["continued"] == 2


async def test_an_orphan_no_worker_takes_ends_interrupted_at_once(
    faults: Faults, store: ConversationStore
) -> None:
    await orphan(faults, store, "answer-1", DELTAS[:3])

    async def refuse(continuation: Continuation) -> None:
        raise Unavailable("this worker is shutting down")

    assert await Reaper(faults.engine, store, "node-1", FailoverPolicy(), refuse).reap_once() == 1
    assert (await stored(store, "answer-1")).status == "interrupted"


async def test_an_orphan_another_reaper_already_continues_is_left_streaming(
    faults: Faults, store: ConversationStore
) -> None:
    """Two reapers for a moment (a paused leader replaced): the second finds the answer
    taken by the first's continuation, which holds the session lease as the answer."""
    await orphan(faults, store, "answer-1", DELTAS[:3])

    async def taken_meanwhile(continuation: Continuation) -> None:
        key = generation_lease_key(continuation.session_id)
        assert await faults.engine.coordination.acquire(key, 30, continuation.message_id)
        raise Busy("a generation is already running in this session")

    reaper = Reaper(faults.engine, store, "node-1", FailoverPolicy(), taken_meanwhile)
    assert await reaper.reap_once() == 0
    assert (await stored(store, "answer-1")).status == "streaming"


async def test_an_orphan_whose_session_another_answer_holds_ends_interrupted(
    faults: Faults, store: ConversationStore
) -> None:
    await orphan(faults, store, "answer-1", DELTAS[:3])

    async def other_answer(continuation: Continuation) -> None:
        key = generation_lease_key(continuation.session_id)
        assert await faults.engine.coordination.acquire(key, 30, "answer-2")
        raise Busy("a generation is already running in this session")

    assert (
        await Reaper(faults.engine, store, "node-1", FailoverPolicy(), other_answer).reap_once()
        == 1
    )
    assert (await stored(store, "answer-1")).status == "interrupted"


@pytest.mark.parametrize("cut", [0, 1, 7, 100, len(split_words(LONG_ANSWER)) - 1])
async def test_the_simulated_model_continues_word_for_word(cut: int) -> None:
    model = SimulatedModel(chunk_delay=0)
    prefix = "".join(split_words(LONG_ANSWER)[:cut])
    turns = [Turn("user", QUESTION)] + ([Turn("assistant", prefix)] if prefix else [])
    deltas = [delta async for delta in model.stream(turns, GenerationParams(max_tokens=10_000))]
    assert deltas == split_words(LONG_ANSWER)[cut:]
    assert prefix + "".join(deltas) == LONG_ANSWER


async def test_a_continuation_publishes_the_rest_with_seq_going_on(
    faults: Faults, store: ConversationStore
) -> None:
    words = split_words(LONG_ANSWER)
    await orphan(faults, store, "answer-1", words[:3])
    generations = Generations(faults.engine, store, SimulatedModel(chunk_delay=0), CONFIG)
    prefix = "".join(words[:3])
    await generations.continue_answer(
        Continuation("s-orphan", "user-1", "answer-1", prefix, 3, 1, [{"seq": 3, "offset": 5}])
    )
    await wait_until(lambda: generations.running_count == 0, "the continuation ends")
    answer = await stored(store, "answer-1")
    # "tell me a story" gets the long answer too (the word "story").
    assert (answer.status, answer.content) == ("completed", LONG_ANSWER)
    assert answer.usage is not None and answer.usage["continued"] == 1
    assert answer.usage["tokens"] == len(words)
    events = (await faults.engine.broker.history("s-orphan", 0)).events
    frames = [orjson.loads(event.data) for event in events]
    seqs = [frame["seq"] for frame in frames if frame["type"] == "chunk"]
    assert seqs == list(range(seqs[0], len(words) + 1))  # the log keeps the newest only
    assert frames[-1]["type"] == "complete" and frames[-1]["usage"]["continued"] == 1


def test_a_restated_prefix_is_dropped_and_new_text_kept() -> None:
    restated = _RepeatedPrefix([Turn("user", "q"), Turn("assistant", "The capital is")])
    out = [restated.feed(d) for d in ["The ", "capital", " is", " Paris", "."]]
    assert "".join(text for part in out for text in part) == " Paris."
    fresh = _RepeatedPrefix([Turn("user", "q"), Turn("assistant", "The capital is")])
    out = [fresh.feed(d) for d in [" Paris", "."]]
    assert "".join(text for part in out for text in part) == " Paris."
    plain = _RepeatedPrefix([Turn("user", "q")])
    assert plain.feed("The ") == ["The "]
