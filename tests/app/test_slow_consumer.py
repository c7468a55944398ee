"""A socket that stops reading is closed with a resume hint; the others carry on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from chatrelay.wire_client import WireClient
from tests.app.inprocess import new_session, new_user, running_app

CLOSE_TOO_SLOW = 4408
SEND_QUEUE_SIZE = 16
# Short pauses between words, so a reader that reads keeps up: the stalled one alone falls behind.
CHUNK_DELAY = 0.001


async def test_a_stalled_socket_is_dropped_and_can_resume(tmp_path: Path) -> None:
    # The long answer is ~190 frames, far more than the send queue holds.
    async with running_app(
        tmp_path / "slow.db", chunk_delay=CHUNK_DELAY, send_queue_size=SEND_QUEUE_SIZE
    ) as app:
        user, session = new_user(), new_session()
        reader = await app.connect(session_id=session, user_id=user)
        # max_queue=1: once one frame waits unread, the app's send to this socket blocks.
        stalled = await app.socket(max_queue=1, session_id=session, user_id=user)
        epoch = reader.welcome["epoch"]
        turn = await reader.follow(await reader.chat("explain the slow reader"))
        assert turn.complete is not None and turn.complete["status"] == "completed"
        assert reader.offsets() == list(range(1, len(reader.offsets()) + 1))

        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await stalled.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == CLOSE_TOO_SLOW
        match = re.search(r"resume from offset (\d+)", closed.value.rcvd.reason)
        assert match, closed.value.rcvd.reason
        resume_from = int(match.group(1))
        assert resume_from < reader.offsets()[-1]

        # It comes back for exactly what it missed.
        back = await app.connect(session_id=session, user_id=user)
        await back.send({"type": "resume", "epoch": epoch, "offset": resume_from})
        missed = [await back.recv() for _ in range(reader.offsets()[-1] - resume_from)]
        assert [f["offset"] for f in missed] == list(
            range(resume_from + 1, reader.offsets()[-1] + 1)
        )


async def test_a_slow_reader_that_asked_gets_coalesced_chunks_and_exactly_the_text(
    tmp_path: Path,
) -> None:
    async with running_app(tmp_path / "coalesce.db", chunk_delay=CHUNK_DELAY) as app:
        user, session = new_user(), new_session()
        reader = await app.connect(session_id=session, user_id=user)
        # It reads nothing until the answer is complete: its chunks queue up behind
        # the one frame its transport holds.
        slow = await app.socket(max_queue=1, session_id=session, user_id=user, coalesce="1")
        plain = await app.socket(max_queue=1, session_id=session, user_id=user)
        turn = await reader.follow(await reader.chat("explain the slow reader"))
        assert turn.complete is not None and turn.complete["status"] == "completed"
        last = reader.offsets()[-1]
        chunks = len(turn.chunks)

        slow_client, plain_client = WireClient(slow), WireClient(plain)
        await slow_client.read_welcome()
        await plain_client.read_welcome()
        for client in (slow_client, plain_client):
            seen = await client.follow(turn.message_id)
            assert seen.text == turn.complete["content"] == turn.text
            assert client.offset == last
        # The slow socket that asked got fewer frames for the same chunks, each
        # covering the offsets after the one before: nothing lost, nothing twice.
        slow_chunks = slow_client.turns[turn.message_id].chunks
        assert len(slow_chunks) < chunks // 4
        covered = [
            n
            for f in slow_chunks
            for n in range(f.get("from_offset", f["offset"]), f["offset"] + 1)
        ]
        assert covered == [f["offset"] for f in turn.chunks]
        # One that did not ask got every chunk as its own frame.
        assert [f["offset"] for f in plain_client.turns[turn.message_id].chunks] == covered
        assert all("from_offset" not in f for f in plain_client.turns[turn.message_id].chunks)
