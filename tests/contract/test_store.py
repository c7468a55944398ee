"""The store contract: the same behaviour on every database (see ``conftest.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chatrelay.store.conversations import ConversationStore

DATABASES = ["sqlite"]


@pytest.fixture(params=DATABASES)
async def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ConversationStore]:
    """A fresh, migrated store on each database the suite runs on."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('store')}/chatrelay.db"
    else:  # pragma: no cover - guarded by params
        raise AssertionError(request.param)
    async with ConversationStore(url) as opened:
        yield opened


async def add(store: ConversationStore, message_id: str, session: str = "s1", role: str = "user",
              content: str = "hello", status: str = "complete") -> dict[str, object]:
    message, _ = await store.add_message(
        message_id=message_id, session_id=session, role=role, content=content, status=status
    )
    return message


async def test_a_session_belongs_to_its_first_claimer(store: ConversationStore) -> None:
    assert await store.session_owner("s1") is None
    assert await store.claim_session("s1", "alice") == "alice"
    assert await store.claim_session("s1", "bob") == "alice"
    assert await store.session_owner("s1") == "alice"


async def test_concurrent_claims_agree_on_one_owner(store: ConversationStore) -> None:
    owners = await asyncio.gather(*(store.claim_session("s9", f"user{n}") for n in range(5)))
    assert len(set(owners)) == 1


async def test_messages_come_back_oldest_first_with_their_fields(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    await add(store, "m1", content="first question")
    await add(store, "m2", role="assistant", content="", status="streaming")
    assert await store.finish_message(
        "m2", status="completed", content="an answer", model="simulated",
        usage={"tokens": 2, "ttft_ms": 1.5},
    )
    messages = await store.history("s1")
    assert [(m["id"], m["role"], m["content"], m["status"]) for m in messages] == [
        ("m1", "user", "first question", "complete"),
        ("m2", "assistant", "an answer", "completed"),
    ]
    assert messages[1]["usage"] == {"tokens": 2, "ttft_ms": 1.5}
    assert messages[1]["model"] == "simulated"
    assert str(messages[0]["created_at"]).endswith("+00:00")


async def test_a_message_id_is_stored_once(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    _, first_new = await store.add_message(
        message_id="m1", session_id="s1", role="user", content="hello", status="complete"
    )
    again, second_new = await store.add_message(
        message_id="m1", session_id="s1", role="user", content="changed", status="complete"
    )
    assert (first_new, second_new) == (True, False)
    assert again["content"] == "hello"
    assert len(await store.history("s1")) == 1


async def test_a_finished_message_is_not_finished_again(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    await add(store, "m1", role="assistant", content="", status="streaming")
    assert await store.finish_message("m1", status="cancelled", content="part")
    assert not await store.finish_message("m1", status="interrupted", content="")
    message = await store.get_message("m1")
    assert message is not None and (message["status"], message["content"]) == ("cancelled", "part")


async def test_history_pages_backwards(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    for n in range(1, 8):
        await add(store, f"m{n}", content=f"message {n}")
    page = await store.history("s1", limit=3)
    assert [m["id"] for m in page] == ["m5", "m6", "m7"]
    older = await store.history("s1", limit=3, before="m5")
    assert [m["id"] for m in older] == ["m2", "m3", "m4"]


async def test_sessions_list_newest_first_with_titles(store: ConversationStore) -> None:
    await store.claim_session("old", "alice")
    await add(store, "m1", session="old", content="An old   question\nwith lines")
    await asyncio.sleep(0.01)
    await store.claim_session("new", "alice")
    await add(store, "m2", session="new", content="x" * 100)
    await store.claim_session("other", "bob")
    sessions = await store.list_sessions("alice")
    assert [s["id"] for s in sessions] == ["new", "old"]
    assert sessions[1]["title"] == "An old question with lines"
    assert sessions[0]["title"] == "x" * 60


async def test_streaming_messages_are_listed_until_finished(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    await add(store, "m1", role="assistant", content="", status="streaming")
    assert [m["id"] for m in await store.streaming_messages()] == ["m1"]
    await store.finish_message("m1", status="interrupted", content="")
    assert await store.streaming_messages() == []


async def test_unicode_and_long_text_survive(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    text = "héllo — 你好 — 🚀 " * 1000
    await add(store, "m1", content=text)
    assert (await store.history("s1"))[0]["content"] == text
