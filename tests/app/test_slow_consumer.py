"""A socket that stops reading is closed with a resume hint; the others carry on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

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
