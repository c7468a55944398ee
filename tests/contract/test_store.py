"""The store contract: the same behaviour on every database (see ``conftest.py``)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest

from chatrelay.exceptions import InvalidMessage, NotFound
from chatrelay.store.conversations import ConversationStore, TurnStart
from chatrelay.store.records import FinalStatus, MessageRecord, MessageStatus, Role
from tests.fixtures.postgres_server import PostgresNotInstalled, PostgresServer, running_postgres
from tests.timing import seconds

DATABASES = ["sqlite", "postgres"]
# Processes opening one fresh database at once, like the nodes of a starting cluster.
STARTING_NODES = 4
OPEN_STORE = (
    "import asyncio, sys\n"
    "from chatrelay.store.conversations import ConversationStore\n"
    "async def main() -> None:\n"
    "    async with ConversationStore(sys.argv[1]):\n"
    "        pass\n"
    "asyncio.run(main())\n"
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole run; each test gets its own database."""
    try:
        with running_postgres() as server:
            yield server
    except PostgresNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of a fresh, empty database (no schema yet) on each database the suite runs on."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('store')}/chatrelay.db"
    if request.param == "postgres":
        # Asked for lazily, so a run of the SQLite tests alone starts no server.
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.create_database("store")
    raise AssertionError(request.param)  # pragma: no cover - guarded by params


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ConversationStore]:
    """A fresh, migrated store on each database the suite runs on."""
    async with ConversationStore(database_url) as opened:
        yield opened


async def add(
    store: ConversationStore,
    message_id: str,
    session: str = "s1",
    role: Role = "user",
    content: str = "hello",
    status: MessageStatus = "complete",
) -> MessageRecord:
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
        "m2",
        status="completed",
        content="an answer",
        model="simulated",
        usage={"tokens": 2, "ttft_ms": 1.5},
    )
    messages = await store.history("s1")
    assert [(m.id, m.role, m.content, m.status) for m in messages] == [
        ("m1", "user", "first question", "complete"),
        ("m2", "assistant", "an answer", "completed"),
    ]
    assert messages[1].usage == {"tokens": 2, "ttft_ms": 1.5}
    assert messages[1].model == "simulated"
    assert messages[0].created_at.utcoffset() == timedelta(0)


async def test_a_message_id_is_stored_once(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    _, first_new = await store.add_message(
        message_id="m1", session_id="s1", role="user", content="hello", status="complete"
    )
    again, second_new = await store.add_message(
        message_id="m1", session_id="s1", role="user", content="changed", status="complete"
    )
    assert (first_new, second_new) == (True, False)
    assert again.content == "hello"
    assert len(await store.history("s1")) == 1


async def test_a_finished_message_is_not_finished_again(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    await add(store, "m1", role="assistant", content="", status="streaming")
    assert await store.finish_message("m1", status="cancelled", content="part")
    assert not await store.finish_message("m1", status="interrupted", content="")
    message = await store.get_message("m1")
    assert message is not None and (message.status, message.content) == ("cancelled", "part")


async def test_history_pages_backwards(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    for n in range(1, 8):
        await add(store, f"m{n}", content=f"message {n}")
    page = await store.history("s1", limit=3)
    assert [m.id for m in page] == ["m5", "m6", "m7"]
    older = await store.history("s1", limit=3, before="m5")
    assert [m.id for m in older] == ["m2", "m3", "m4"]


async def test_sessions_list_newest_first_with_titles(store: ConversationStore) -> None:
    await store.claim_session("old", "alice")
    await add(store, "m1", session="old", content="An old   question\nwith lines")
    await asyncio.sleep(0.01)
    await store.claim_session("new", "alice")
    await add(store, "m2", session="new", content="x" * 100)
    await store.claim_session("other", "bob")
    sessions = await store.list_sessions("alice")
    assert [s.id for s in sessions] == ["new", "old"]
    assert sessions[1].title == "An old question with lines"
    assert sessions[0].title == "x" * 60


async def test_streaming_messages_are_listed_until_finished(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    await add(store, "m1", role="assistant", content="", status="streaming")
    assert [m.id for m in await store.streaming_messages()] == ["m1"]
    await store.finish_message("m1", status="interrupted", content="")
    assert await store.streaming_messages() == []


async def test_unicode_and_long_text_survive(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    text = "héllo — 你好 — 🚀 " * 1000
    await add(store, "m1", content=text)
    assert (await store.history("s1"))[0].content == text


async def test_nodes_starting_together_all_migrate_the_same_database(database_url: str) -> None:
    # A cluster starts every gateway and worker at once on one database: their
    # migrations race, and each must come up with the schema in place. Each
    # node is its own process, as in a cluster (Alembic's state is per process).
    nodes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", OPEN_STORE, database_url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(STARTING_NODES)
    ]
    for node in nodes:
        _, stderr = await asyncio.wait_for(node.communicate(), seconds(60))
        assert node.returncode == 0, stderr.decode(errors="replace")
    async with ConversationStore(database_url) as reopened:  # migrating again changes nothing
        assert await reopened.claim_session("s1", "alice") == "alice"


async def test_concurrent_adds_of_one_message_store_it_once(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    results = await asyncio.gather(
        *(
            store.add_message(
                message_id="m1", session_id="s1", role="user", content=f"try {n}", status="complete"
            )
            for n in range(5)
        )
    )
    assert sorted(new for _, new in results) == [False, False, False, False, True]
    assert len({message.content for message, _ in results}) == 1
    assert len(await store.history("s1")) == 1


async def test_concurrent_adds_in_one_session_are_all_stored(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    await asyncio.gather(*(add(store, f"m{n}", content=f"message {n}") for n in range(8)))
    assert sorted(m.id for m in await store.history("s1")) == [f"m{n}" for n in range(8)]


async def test_only_one_of_concurrent_finishes_wins(store: ConversationStore) -> None:
    # The worker finishing an answer races the reaper marking it interrupted.
    await store.claim_session("s1", "alice")
    await add(store, "m1", role="assistant", content="", status="streaming")
    statuses: list[FinalStatus] = ["completed", "interrupted", "cancelled", "failed"]
    won = await asyncio.gather(
        *(store.finish_message("m1", status=status, content=status) for status in statuses)
    )
    assert sorted(won) == [False, False, False, True]
    message = await store.get_message("m1")
    winner = statuses[won.index(True)]
    assert message is not None and (message.status, message.content) == (winner, winner)


async def begin(
    store: ConversationStore, user: str = "alice", answer: str = "a1", content: str = "hello there"
) -> TurnStart:
    return await store.begin_turn(
        session_id="s1",
        user_id=user,
        user_message_id=f"u-{answer}",
        content=content,
        client_id="c1",
        assistant_id=answer,
        history_limit=10,
    )


async def test_a_turn_begins_in_one_go(store: ConversationStore) -> None:
    first = await begin(store)
    assert first.started and first.owner == "alice"
    assert first.user_message is not None and first.user_message.client_id == "c1"
    assert first.assistant_message is not None
    assert first.assistant_message.status == "streaming"
    assert [(m.role, m.status) for m in first.history] == [
        ("user", "complete"),
        ("assistant", "streaming"),
    ]
    assert (await store.list_sessions("alice"))[0].title == "hello there"
    await store.finish_message("a1", status="completed", content="hi")
    second = await begin(store, answer="a2", content="again")
    assert [m.content for m in second.history] == ["hello there", "hi", "again", ""]


async def test_a_turn_writes_nothing_for_another_owner_or_a_retry(
    store: ConversationStore,
) -> None:
    await begin(store)
    intruder = await begin(store, user="mallory", answer="a9")
    assert (intruder.owner, intruder.started) == ("alice", False)
    retry = await begin(store)
    assert (retry.owner, retry.started) == ("alice", False)
    assert [m.id for m in await store.history("s1")] == ["u-a1", "a1"]


# -- the session list: pages, rename, delete, search


async def test_sessions_come_in_pages_that_neither_skip_nor_repeat(
    store: ConversationStore,
) -> None:
    for n in range(7):
        await store.claim_session(f"s{n}", "alice")
        await add(store, f"m{n}", session=f"s{n}", content=f"question {n}")
    await store.claim_session("b", "bob")
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(4):
        page = await store.session_page("alice", limit=3, cursor=cursor)
        seen += [s.id for s in page.sessions]
        cursor = page.next
        if cursor is None:
            break
    assert seen == [f"s{n}" for n in reversed(range(7))]


async def test_a_malformed_cursor_is_refused(store: ConversationStore) -> None:
    with pytest.raises(InvalidMessage):
        await store.session_page("alice", cursor="not-a-cursor")


async def test_a_renamed_session_keeps_its_title(store: ConversationStore) -> None:
    await store.claim_session("s1", "alice")
    await add(store, "m1", content="first question")
    renamed = await store.rename_session("s1", "Trip to Lisbon")
    await add(store, "m2", content="another question")
    assert renamed is not None and renamed.title == "Trip to Lisbon"
    assert [s.title for s in await store.list_sessions("alice")] == ["Trip to Lisbon"]
    assert await store.rename_session("nowhere", "x") is None


async def test_deleting_a_session_removes_its_messages_and_runs_the_hooks(
    store: ConversationStore,
) -> None:
    await store.claim_session("s1", "alice")
    await store.claim_session("s2", "alice")
    await add(store, "m1", session="s1")
    await add(store, "m2", session="s2")
    deleted: list[str] = []

    async def record(db: object, session_id: str) -> None:
        deleted.append(session_id)

    store.deletion_hooks.append(record)
    assert await store.delete_session("s1") is True
    assert await store.delete_session("s1") is False
    assert deleted == ["s1"]
    assert await store.session_owner("s1") is None
    assert await store.history("s1") == []
    assert await store.get_message("m1") is None
    assert [m.id for m in await store.history("s2")] == ["m2"]


async def test_search_finds_titles_and_message_text_of_the_callers_sessions(
    store: ConversationStore,
) -> None:
    await store.claim_session("trip", "alice")
    await add(store, "m1", session="trip", content="Plan a trip to Lisbon")
    await add(
        store, "a1", session="trip", role="assistant", content="Try the Pastéis de Belém 100%"
    )
    await store.claim_session("code", "alice")
    await add(store, "m2", session="code", content="fix my_function please")
    await store.claim_session("bob", "bob")
    await add(store, "m3", session="bob", content="Lisbon for bob")
    hits = await store.search("alice", "LISBON")
    assert [h.session.id for h in hits] == ["trip"]
    assert "Lisbon" in hits[0].snippet
    belem = await store.search("alice", "pastéis")
    assert [h.session.id for h in belem] == ["trip"]
    assert "Pastéis de Belém" in belem[0].snippet
    # LIKE's wildcards are plain characters here.
    assert [h.session.id for h in await store.search("alice", "100%")] == ["trip"]
    assert [h.session.id for h in await store.search("alice", "my_f")] == ["code"]
    assert await store.search("alice", "m_f") == []
    assert await store.search("alice", "nothing like it") == []


async def test_a_regeneration_answers_a_stored_question_again(store: ConversationStore) -> None:
    await begin(store, answer="a1", content="first question")
    await store.finish_message("a1", status="completed", content="first answer")

    async def regenerate(answer: str, user: str = "alice", question: str = "u-a1") -> TurnStart:
        return await store.begin_regeneration(
            session_id="s1",
            user_id=user,
            user_message_id=question,
            assistant_id=answer,
            history_limit=10,
        )

    again = await regenerate("a1b")
    assert again.started and again.assistant_message is not None
    assert again.assistant_message.reply_to == "u-a1"
    # The model sees the question, not the answer it replaces.
    assert [m.id for m in again.history] == ["u-a1"]
    await store.finish_message("a1b", status="completed", content="second answer")
    assert not (await regenerate("a1b")).started  # a retry writes nothing
    assert (await regenerate("a1c", user="bob")).owner == "alice"
    with pytest.raises(NotFound):
        await regenerate("a1d", question="nowhere")

    nxt = await begin(store, answer="a2", content="next question")
    # Each earlier turn shows its newest answer only.
    assert [m.id for m in nxt.history] == ["u-a1", "a1b", "u-a2", "a2"]
    stored = await store.history("s1")
    assert [(m.id, m.reply_to) for m in stored] == [
        ("u-a1", None),
        ("a1", "u-a1"),
        ("a1b", "u-a1"),
        ("u-a2", None),
        ("a2", "u-a2"),
    ]


async def test_an_edit_forks_the_conversation_and_the_model_sees_the_new_branch(
    store: ConversationStore,
) -> None:
    await begin(store, answer="a1", content="first question")
    await store.finish_message("a1", status="completed", content="first answer")
    await begin(store, answer="a2", content="second question")
    await store.finish_message("a2", status="completed", content="second answer")

    async def edit(answer: str, edited: str = "u-a1", user: str = "alice") -> TurnStart:
        return await store.begin_edit(
            session_id="s1",
            user_id=user,
            edited_id=edited,
            user_message_id=f"u-{answer}",
            content="first question, edited",
            assistant_id=answer,
            history_limit=10,
        )

    forked = await edit("a1b")
    assert forked.started and forked.user_message is not None
    assert forked.user_message.parent_id is None  # a version of the first question
    # The model sees the new question only: the old branch is not in its context.
    assert [m.id for m in forked.history] == ["u-a1b", "a1b"]
    assert not (await edit("a1b")).started  # a retry writes nothing
    assert (await edit("a1c", user="bob")).owner == "alice"
    with pytest.raises(NotFound):
        await edit("a1d", edited="a1")  # an answer is not edited
    await store.finish_message("a1b", status="completed", content="another first answer")

    nxt = await begin(store, answer="a3", content="third question")
    assert [m.id for m in nxt.history] == ["u-a1b", "a1b", "u-a3", "a3"]
    # Editing the second question of the old branch forks that branch in turn.
    deeper = await edit("a2b", edited="u-a2")
    assert [m.id for m in deeper.history] == ["u-a1", "a1", "u-a2b", "a2b"]
    parents = {m.id: m.parent_id for m in await store.history("s1")}
    assert parents == {
        "u-a1": None,
        "a1": "u-a1",
        "u-a2": "a1",
        "a2": "u-a2",
        "u-a1b": None,
        "a1b": "u-a1b",
        "u-a3": "a1b",
        "a3": "u-a3",
        "u-a2b": "a1",
        "a2b": "u-a2b",
    }
