"""The outbox in the store: events commit with their change, in order, only when the log is on."""

from __future__ import annotations

from pathlib import Path

from chatrelay.events.envelope import BadEvent, decode
from chatrelay.store.conversations import ConversationStore


async def _turn(store: ConversationStore, session: str, n: int) -> None:
    await store.begin_turn(
        session_id=session,
        user_id="alice",
        user_message_id=f"u{n}",
        content=f"question {n}",
        client_id=f"c{n}",
        assistant_id=f"a{n}",
        history_limit=10,
        model="simulated",
    )
    await store.finish_message(
        f"a{n}", status="completed", content=f"answer {n}", model="simulated", usage={"tokens": 2}
    )


async def test_a_turn_writes_its_events_in_order(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    async with ConversationStore(url, node="node-1", record_events=True) as store:
        await _turn(store, "s1", 1)
        await _turn(store, "s1", 2)
        rows = await store.outbox.unsent(0, 100)
    events = [decode(row.payload) for row in rows]
    assert [e["type"] for e in events] == [
        "session.created",
        "message.user",
        "message.started",
        "message.finished",
        "message.user",
        "message.started",
        "message.finished",
    ]
    assert [row.seq for row in rows] == sorted(row.seq for row in rows)
    assert len({e["id"] for e in events}) == len(events)
    assert {(e["session_id"], e["user_id"], e["node"]) for e in events} == {
        ("s1", "alice", "node-1")
    }
    user, started, finished = events[1], events[2], events[3]
    assert user["data"] == {
        "message_id": "u1",
        "content": "question 1",
        "client_id": "c1",
        "parent_id": None,  # the first message
    }
    assert started["data"] == {
        "message_id": "a1",
        "reply_to": "u1",
        "parent_id": "u1",
        "model": "simulated",
        "worker": "node-1",
    }
    assert finished["data"]["status"] == "completed"
    assert finished["data"]["content"] == "answer 1"
    assert finished["data"]["usage"] == {"tokens": 2}


async def test_regenerate_rename_and_delete_are_events_too(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    async with ConversationStore(url, node="node-1", record_events=True) as store:
        await _turn(store, "s1", 1)
        await store.begin_regeneration(
            session_id="s1",
            user_id="alice",
            user_message_id="u1",
            assistant_id="a1-again",
            history_limit=10,
            model="simulated",
        )
        await store.rename_session("s1", "Trip to Lisbon")
        assert await store.delete_session("s1")
        assert not await store.delete_session("s1")  # nothing stored: no second event
        rows = await store.outbox.unsent(0, 100)
    events = [decode(row.payload) for row in rows][4:]
    assert [(e["type"], e["user_id"]) for e in events] == [
        ("message.started", "alice"),
        ("session.renamed", "alice"),
        ("session.deleted", "alice"),
    ]
    regenerated, renamed, deleted = events
    assert regenerated["data"]["message_id"] == "a1-again"
    assert regenerated["data"]["reply_to"] == "u1"
    assert renamed["data"] == {"title": "Trip to Lisbon"}
    assert deleted["data"] == {}


async def test_an_edit_is_a_user_message_with_its_parent_and_what_it_edits(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    async with ConversationStore(url, node="node-1", record_events=True) as store:
        await _turn(store, "s1", 1)
        await _turn(store, "s1", 2)
        await store.begin_edit(
            session_id="s1",
            user_id="alice",
            edited_id="u2",
            user_message_id="u2-edited",
            content="question 2, edited",
            assistant_id="a2-edited",
            history_limit=10,
            model="simulated",
        )
        rows = await store.outbox.unsent(0, 100)
    user, started = [decode(row.payload) for row in rows][-2:]
    assert (user["type"], started["type"]) == ("message.user", "message.started")
    assert user["data"] == {
        "message_id": "u2-edited",
        "content": "question 2, edited",
        "client_id": None,
        "parent_id": "a1",  # the edited question's parent: a version of it
        "edit_of": "u2",
    }
    assert started["data"]["parent_id"] == "u2-edited"


async def test_a_message_finished_twice_has_one_event(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    async with ConversationStore(url, record_events=True) as store:
        await _turn(store, "s1", 1)
        assert not await store.finish_message("a1", status="cancelled", content="late")
        types = [decode(row.payload)["type"] for row in await store.outbox.unsent(0, 100)]
    assert types.count("message.finished") == 1


async def test_without_the_event_log_nothing_is_written(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    async with ConversationStore(url) as store:
        await _turn(store, "s1", 1)
        assert await store.outbox.unsent(0, 100) == []
        assert (await store.outbox.backlog()).count == 0
        assert store.outbox.health() == "off"


async def test_sent_and_dead_rows_leave_the_backlog(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    async with ConversationStore(url, record_events=True) as store:
        await _turn(store, "s1", 1)
        rows = await store.outbox.unsent(0, 100)
        await store.outbox.settle([rows[0].seq, rows[1].seq], [(rows[2], "too large")])
        backlog = await store.outbox.backlog()
        assert backlog.count == len(rows) - 3
        assert [seq for seq in (r.seq for r in await store.outbox.unsent(0, 100))] == [
            r.seq for r in rows[3:]
        ]
        assert await store.outbox.dead_letters() == [(rows[2].event_id, "too large")]


def test_decode_says_what_is_wrong() -> None:
    for raw, reason in [
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"v": 1}', "missing id"),
    ]:
        try:
            decode(raw)
        except BadEvent as exc:
            assert reason in str(exc)
        else:
            raise AssertionError(f"{raw!r} decoded")
