"""What the store contract (tests/contract/test_store.py) leaves out: checkpoints, racing turns.

On SQLite in a temp file, as the all-in-one server runs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatrelay.store.conversations import ConversationStore, TurnStart

# Nodes starting the first turn of one session at once.
RACING_TURNS = 4


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ConversationStore]:
    async with ConversationStore(f"sqlite+aiosqlite:///{tmp_path / 'chatrelay.db'}") as opened:
        yield opened


async def begin(store: ConversationStore, user: str, answer: str) -> TurnStart:
    return await store.begin_turn(
        session_id="s1",
        user_id=user,
        user_message_id=f"u-{answer}",
        content="hello",
        client_id=None,
        assistant_id=answer,
        history_limit=10,
    )


async def test_a_checkpoint_keeps_the_text_so_far_and_never_overwrites_the_end(
    store: ConversationStore,
) -> None:
    await begin(store, "alice", "a1")
    await store.save_progress("a1", "Once upon")
    assert [m.content for m in await store.streaming_messages()] == ["Once upon"]
    assert await store.finish_message("a1", status="completed", content="Once upon a time.")
    await store.save_progress("a1", "Once upon a")  # a late checkpoint, racing the end
    message = await store.get_message("a1")
    assert message is not None
    assert (message.status, message.content) == ("completed", "Once upon a time.")


async def test_users_racing_for_a_new_session_agree_on_one_owner(
    store: ConversationStore,
) -> None:
    turns = await asyncio.gather(*(begin(store, f"user{n}", f"a{n}") for n in range(RACING_TURNS)))
    assert len({turn.owner for turn in turns}) == 1
    started = [turn for turn in turns if turn.started]
    assert len(started) == 1 and started[0].owner == turns[0].owner
    assert await store.session_owner("s1") == turns[0].owner
    assert len(await store.history("s1")) == 2  # the winner's question and answer only


async def test_a_turn_retried_concurrently_starts_once(store: ConversationStore) -> None:
    turns = await asyncio.gather(*(begin(store, "alice", "a1") for _ in range(RACING_TURNS)))
    assert sorted(turn.started for turn in turns) == [False] * (RACING_TURNS - 1) + [True]
    assert [m.id for m in await store.history("s1")] == ["u-a1", "a1"]
