"""Join snapshots, in process: a socket joining or resuming mid-answer gets the text so far
in one ``snapshot`` (or a few parts) and then the tail, never a replay of every chunk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from chatrelay.llm.simulated import numbered_answer, split_words
from chatrelay.wire_client import WireClient
from tests.app.inprocess import InProcessApp, new_session, new_user, running_app

WORDS = 600
DELTAS = split_words(numbered_answer(WORDS))
ANSWER = numbered_answer(WORDS)


@pytest.fixture
async def long_app(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[InProcessApp]:
    """An app whose answers can be 600 words, streamed fast; ``overrides`` by parametrize."""
    overrides: dict[str, Any] = {"chunk_delay": 0.002, "max_tokens": 4000}
    overrides.update(getattr(request, "param", {}))
    async with running_app(tmp_path / "chatrelay.db", **overrides) as running:
        yield running


async def _answer_under_way(app: InProcessApp, chunks: int) -> tuple[WireClient, str, str, str]:
    """A session whose long answer has streamed ``chunks`` chunks: (client, user, session, id)."""
    user, session = new_user(), new_session()
    first = await app.connect(session_id=session, user_id=user)
    message_id = await first.chat(f"#words={WORDS}")
    for _ in range(chunks):
        await first.recv_type("chunk")
    return first, user, session, message_id


def _log_frames(client: WireClient) -> list[dict[str, Any]]:
    kinds = ("message", "chunk", "complete", "snapshot")
    return [dict(frame) for frame in client.frames if frame["type"] in kinds]


def _assert_snapshot_then_tail(client: WireClient, message_id: str) -> list[dict[str, Any]]:
    """The snapshot parts the client got, checked: their text is the answer up to their
    ``seq``, and the chunks after them go on at ``offset`` + 1 with no gap or repeat."""
    frames = _log_frames(client)
    parts = [frame for frame in frames if frame["type"] == "snapshot"]
    assert parts, [frame["type"] for frame in frames]
    assert [part["part"] for part in parts] == list(range(1, parts[0]["parts"] + 1))
    assert {(part["offset"], part["seq"], part["message_id"]) for part in parts} == {
        (parts[0]["offset"], parts[0]["seq"], message_id)
    }
    snapshot = parts[-1]
    assert "".join(part["text"] for part in parts) == "".join(DELTAS[: snapshot["seq"]])
    tail = frames[frames.index(snapshot) + 1 :]
    assert [frame["offset"] for frame in tail] == list(
        range(snapshot["offset"] + 1, snapshot["offset"] + 1 + len(tail))
    )
    chunks = [frame for frame in tail if frame["type"] == "chunk"]
    assert [chunk["seq"] for chunk in chunks] == list(
        range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(chunks))
    )
    assert tail[-1]["type"] == "complete" and tail[-1]["content"] == ANSWER
    return parts


async def test_a_tab_joining_mid_answer_gets_a_snapshot_then_the_tail(
    long_app: InProcessApp,
) -> None:
    first, user, session, message_id = await _answer_under_way(long_app, 200)
    tab = await long_app.connect(session_id=session, user_id=user)
    await tab.send({"type": "resume", "epoch": tab.welcome["epoch"], "offset": 0, "snapshot": True})
    turn = await tab.follow(message_id)
    parts = _assert_snapshot_then_tail(tab, message_id)
    assert len(parts) == 1 and parts[0]["seq"] >= 200
    # The user's message and the answer's start are replayed from the log, before it.
    frames = _log_frames(tab)
    replayed = frames[: frames.index(parts[0])]
    assert [(f["type"], f["offset"]) for f in replayed if f["offset"] <= 2] == [
        ("message", 1),
        ("message", 2),
    ]
    assert turn.text == ANSWER == (await first.follow(message_id)).text
    # Instead of 200+ chunk frames up to the snapshot: a few live ones at most, and one snapshot.
    assert len(frames) < WORDS - 150


async def test_a_resume_from_early_in_the_answer_gets_a_snapshot_not_its_chunks(
    long_app: InProcessApp,
) -> None:
    first, user, session, message_id = await _answer_under_way(long_app, 200)
    back = await long_app.connect(session_id=session, user_id=user)
    await back.send(
        {"type": "resume", "epoch": back.welcome["epoch"], "offset": 10, "snapshot": True}
    )
    turn = await back.follow(message_id)
    _assert_snapshot_then_tail(back, message_id)
    assert turn.text == ANSWER
    await first.follow(message_id)


async def test_a_short_resume_is_still_replayed_chunk_by_chunk(long_app: InProcessApp) -> None:
    first, user, session, message_id = await _answer_under_way(long_app, 100)
    at = first.offset
    back = await long_app.connect(session_id=session, user_id=user)
    # Fewer chunks than snapshot_min_chunks (32) behind the newest: plain chunks.
    await back.send(
        {"type": "resume", "epoch": back.welcome["epoch"], "offset": at - 5, "snapshot": True}
    )
    await back.follow(message_id)
    assert not [frame for frame in back.frames if frame["type"] == "snapshot"]
    assert sorted(set(back.offsets())) == list(range(at - 4, max(back.offsets()) + 1))
    await first.follow(message_id)


@pytest.mark.parametrize("long_app", [{"max_frame_bytes": 2048}], indirect=True)
async def test_a_snapshot_longer_than_a_frame_comes_in_parts_under_the_limit(
    long_app: InProcessApp,
) -> None:
    first, user, session, message_id = await _answer_under_way(long_app, 450)
    tab = await long_app.connect(session_id=session, user_id=user)
    await tab.send({"type": "resume", "epoch": tab.welcome["epoch"], "offset": 0, "snapshot": True})
    turn = await tab.follow(message_id)
    parts = _assert_snapshot_then_tail(tab, message_id)
    assert len(parts) >= 2
    assert all(len(orjson.dumps(part)) <= 2048 for part in parts)
    assert turn.text == ANSWER
    await first.follow(message_id)


TRIMMED = {"log_max_events": 100, "checkpoint_seconds": 0.02}


@pytest.mark.parametrize("long_app", [TRIMMED], indirect=True)
async def test_a_trimmed_log_is_joined_to_the_checkpoint_instead_of_a_reset(
    long_app: InProcessApp,
) -> None:
    first, user, session, message_id = await _answer_under_way(long_app, 300)
    tab = await long_app.connect(session_id=session, user_id=user)
    await tab.send({"type": "resume", "epoch": tab.welcome["epoch"], "offset": 0, "snapshot": True})
    back = await long_app.connect(session_id=session, user_id=user)
    # Offset 10: the client saw the answer start; all it lost is chunks.
    await back.send(
        {"type": "resume", "epoch": back.welcome["epoch"], "offset": 10, "snapshot": True}
    )
    for client in (tab, back):
        turn = await client.follow(message_id)
        assert not [frame for frame in client.frames if frame["type"] == "reset"]
        _assert_snapshot_then_tail(client, message_id)
        assert turn.text == ANSWER
    # Offset 1 (before the answer's start, trimmed away): only a reset is honest.
    late = await long_app.connect(session_id=session, user_id=user)
    await late.send(
        {"type": "resume", "epoch": late.welcome["epoch"], "offset": 1, "snapshot": True}
    )
    assert (await late.recv_type("reset", "snapshot", "chunk"))["type"] == "reset"
    await first.follow(message_id)


@pytest.mark.parametrize("long_app", [{**TRIMMED, "checkpoint_seconds": 3600}], indirect=True)
async def test_a_trimmed_log_without_a_checkpoint_reaching_it_is_a_reset(
    long_app: InProcessApp,
) -> None:
    first, user, session, message_id = await _answer_under_way(long_app, 300)
    tab = await long_app.connect(session_id=session, user_id=user)
    await tab.send({"type": "resume", "epoch": tab.welcome["epoch"], "offset": 0, "snapshot": True})
    assert (await tab.recv_type("reset", "snapshot"))["type"] == "reset"
    await first.follow(message_id)


@pytest.mark.parametrize("long_app", [{**TRIMMED, "snapshot_min_chunks": 0}], indirect=True)
async def test_snapshots_turned_off_give_the_v1_answers(long_app: InProcessApp) -> None:
    first, user, session, message_id = await _answer_under_way(long_app, 300)
    tab = await long_app.connect(session_id=session, user_id=user)
    await tab.send({"type": "resume", "epoch": tab.welcome["epoch"], "offset": 0, "snapshot": True})
    assert (await tab.recv_type("reset", "snapshot"))["type"] == "reset"
    await first.follow(message_id)


async def test_asking_again_on_the_same_socket_sends_no_second_snapshot(
    long_app: InProcessApp,
) -> None:
    first, user, session, message_id = await _answer_under_way(long_app, 200)
    tab = await long_app.connect(session_id=session, user_id=user)
    epoch = tab.welcome["epoch"]
    await tab.send({"type": "resume", "epoch": epoch, "offset": 0, "snapshot": True})
    await tab.recv_type("snapshot")
    for _ in range(3):
        await tab.send({"type": "resume", "epoch": epoch, "offset": 0, "snapshot": True})
    await tab.send({"type": "ping"})
    await tab.recv_type("pong")
    await tab.follow(message_id)
    assert [frame["type"] for frame in tab.frames].count("snapshot") == 1
    await first.follow(message_id)


async def test_a_client_that_does_not_ask_for_snapshots_gets_the_v1_replay(
    long_app: InProcessApp,
) -> None:
    first, user, session, message_id = await _answer_under_way(long_app, 200)
    tab = await long_app.connect(session_id=session, user_id=user)
    await tab.send({"type": "resume", "epoch": tab.welcome["epoch"], "offset": 0})
    turn = await tab.follow(message_id)
    assert not [frame for frame in tab.frames if frame["type"] == "snapshot"]
    assert sorted(set(tab.offsets())) == list(range(1, max(tab.offsets()) + 1))
    assert turn.complete is not None and turn.complete["content"] == ANSWER
    await first.follow(message_id)
