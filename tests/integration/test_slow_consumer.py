"""A socket that stops reading is closed with a resume hint; the others carry on."""

from __future__ import annotations

import re
import socket
import uuid

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests import wsclient
from tests.fixtures.processes import start_server
from tests.timing import seconds

CHATS = 12
# Big messages make the stream outgrow what the kernel's socket buffers absorb
# (megabytes on loopback), so the server's own bounded queue is what fills.
BIG = 600_000


async def test_a_stalled_socket_is_dropped_and_can_resume(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = start_server(
        tmp_path_factory.mktemp("slow"),
        {"CHUNK_DELAY": "0.002", "CHATRELAY_SEND_QUEUE_SIZE": "64",
         "CHATRELAY_CHAT_RATE_BURST": "100", "CHATRELAY_MAX_FRAME_BYTES": str(2 * BIG),
         "CHATRELAY_MAX_MESSAGE_CHARS": str(2 * BIG)},
    )
    user, session = f"u-{uuid.uuid4().hex[:6]}", f"s-{uuid.uuid4().hex[:8]}"
    try:
        reader = await wsclient.connect(server.ws, session_id=session, user_id=user)
        # max_queue=1: once one frame waits unread, this client stops reading the socket;
        # a small receive buffer keeps the kernel from absorbing the whole stream.
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", server.port))
        stalled = await websockets.connect(
            f"{server.ws}?session_id={session}&user_id={user}", max_queue=1, max_size=None,
            sock=raw,
        )
        epoch = reader.welcome["epoch"]
        for n in range(CHATS):
            turn = await reader.follow(await reader.chat(f"hello {n} " + "x" * BIG),
                                       timeout=seconds(30))
            assert turn.complete is not None and turn.complete["status"] == "completed"
        assert reader.offsets() == list(range(1, len(reader.offsets()) + 1))

        frames = 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await stalled.recv()
                frames += 1
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4408
        match = re.search(r"resume from offset (\d+)", closed.value.rcvd.reason)
        assert match, closed.value.rcvd.reason
        resume_from = int(match.group(1))
        assert resume_from < reader.offsets()[-1]

        # It comes back for exactly what it missed.
        back = await wsclient.connect(server.ws, session_id=session, user_id=user)
        await back.send({"type": "resume", "epoch": epoch, "offset": resume_from})
        missed = [await back.recv() for _ in range(reader.offsets()[-1] - resume_from)]
        assert [f["offset"] for f in missed] == list(range(resume_from + 1, reader.offsets()[-1] + 1))
        await back.close()
        await reader.close()
    finally:
        server.process.stop()
