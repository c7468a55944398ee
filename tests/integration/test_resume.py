"""A real network drop, and a real SIGTERM, against ``chatrelay serve``.

Resume from an offset, reset on a foreign epoch, history mid-stream and the
drain itself are tested in process (``tests/app/test_resume.py``).
"""

from __future__ import annotations

import asyncio
import signal
import uuid

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from chatrelay.client import ChatClient
from chatrelay.llm.simulated import LONG_ANSWER
from chatrelay.protocol.server_frames import ServerFrame
from chatrelay.wire_client import log_offset
from tests import wsclient
from tests.fixtures.processes import Server, start_server
from tests.timing import seconds


def ids() -> tuple[str, str]:
    return f"user-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:12]}"


async def collect(client: ChatClient, until_complete: int = 1) -> list[ServerFrame]:
    """Frames until ``until_complete`` complete frames arrived."""
    frames: list[ServerFrame] = []
    async with asyncio.timeout(seconds(30)):
        while sum(f["type"] == "complete" for f in frames) < until_complete:
            frames.append(await client.receive())
    return frames


def log_offsets(frames: list[ServerFrame]) -> list[int]:
    return [offset for frame in frames if (offset := log_offset(frame)) is not None]


async def test_a_dropped_connection_resumes_without_gap_or_repeat(server: Server) -> None:
    user, session = ids()
    # coalesce=False: the test audits the offsets chunk by chunk.
    async with ChatClient(server.ws, session, user, coalesce=False) as client:
        await client.chat("explain the journey of a chunk")
        frames = [await client.receive() for _ in range(8)]
        assert client._connection is not None
        socket = client._connection.connection
        assert isinstance(socket, ClientConnection)
        socket.transport.abort()  # the network drops under us
        frames += await collect(client)
        assert client.connects == 2
    offsets = log_offsets(frames)
    assert offsets == list(range(1, len(offsets) + 1))
    text = "".join(f["delta"] for f in frames if f["type"] == "chunk")
    complete = frames[-1]
    assert complete["status"] == "completed"
    assert text == complete["content"] == LONG_ANSWER


async def test_sigterm_drains_sockets_and_interrupts_honestly(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("drain")
    draining = start_server(tmp, {"CHUNK_DELAY": "0.05", "CHATRELAY_DRAIN_GRACE_SECONDS": "1"})
    user, session = ids()
    try:
        client = await wsclient.connect(draining.ws, session_id=session, user_id=user)
        message_id = await client.chat("explain the drain")
        await client.recv_type("chunk")
        draining.process.signal(signal.SIGTERM)
        reconnect = await client.recv_type("reconnect")
        assert reconnect["reason"]
        with pytest.raises(Exception) as closed:
            await client.recv()
        assert getattr(closed.value, "rcvd", None) is not None
        assert closed.value.rcvd.code == 1012  # type: ignore[attr-defined]
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert draining.process.popen.wait(seconds(15)) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in draining.process.log()
    finally:
        draining.process.stop()
    # The answer did not finish within the grace period: it is interrupted, not lost.
    again = start_server(tmp, port=draining.port, db_url=draining.db_url)
    try:
        async with httpx.AsyncClient(base_url=again.http) as http:
            stored = (await http.get(f"/api/history/{session}", params={"user_id": user})).json()
        answer = stored["messages"][-1]
        assert answer["id"] == message_id
        assert answer["status"] == "interrupted"
        assert answer["content"] and LONG_ANSWER.startswith(answer["content"])
    finally:
        again.process.stop()
