"""``WireClient`` over an in-memory connection: what it records, numbers and gathers."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from chatrelay.exceptions import FrameError
from chatrelay.wire_client import WireClient


class ScriptedConnection:
    """A connection whose server side is a list of frames; it keeps what the client sent."""

    def __init__(self, *frames: dict[str, object]) -> None:
        self.inbound: asyncio.Queue[str] = asyncio.Queue()
        for frame in frames:
            self.inbound.put_nowait(orjson.dumps(frame).decode())
        self.sent: list[object] = []
        self.closed = False

    async def send(self, message: str) -> None:
        self.sent.append(orjson.loads(message))

    async def recv(self) -> str:
        return await self.inbound.get()

    async def close(self) -> None:
        self.closed = True


WELCOME = {
    "type": "welcome",
    "node": "gw-1",
    "session_id": "s1",
    "user_id": "u1",
    "epoch": "e1",
    "offset": 2,
    "protocol": 1,
}


def _assistant(offset: int, message_id: str) -> dict[str, object]:
    message = {
        "id": message_id,
        "session_id": "s1",
        "role": "assistant",
        "content": "",
        "status": "streaming",
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    return {"offset": offset, "type": "message", "message": message}


def _chunk(offset: int, message_id: str, seq: int, delta: str) -> dict[str, object]:
    return {
        "offset": offset,
        "type": "chunk",
        "message_id": message_id,
        "seq": seq,
        "delta": delta,
        "ts": 1.0,
    }


def _complete(offset: int, message_id: str, content: str) -> dict[str, object]:
    return {
        "offset": offset,
        "type": "complete",
        "message_id": message_id,
        "status": "completed",
        "content": content,
    }


async def test_a_turn_gathers_its_chunks_and_end_and_a_repeat_is_counted_not_gathered() -> None:
    connection = ScriptedConnection(
        WELCOME,
        _assistant(3, "a1"),
        _chunk(4, "a1", 1, "Hel"),
        _chunk(4, "a1", 1, "Hel"),  # a repeat, as after a resume
        _chunk(5, "a1", 2, "lo"),
        _complete(6, "a1", "Hello"),
    )
    client = WireClient(connection)
    welcome = await client.read_welcome()
    assert (welcome["epoch"], client.offset) == ("e1", 2)
    turn = await client.follow("a1")
    assert turn.text == "Hello" and turn.complete is not None
    assert turn.complete["content"] == "Hello"
    assert client.offsets() == [3, 4, 4, 5, 6]
    assert (client.offset, client.duplicates) == (6, 1)


async def test_a_reset_moves_the_epoch_and_offset() -> None:
    connection = ScriptedConnection(WELCOME, {"type": "reset", "epoch": "e2", "offset": 40})
    client = WireClient(connection)
    await client.read_welcome()
    await client.resume("e0", 1)
    assert (await client.recv())["type"] == "reset"
    assert (client.epoch, client.offset) == ("e2", 40)
    assert connection.sent == [{"type": "resume", "epoch": "e0", "offset": 1}]


async def test_chat_returns_the_assistant_message_that_answers() -> None:
    user = {
        "offset": 3,
        "type": "message",
        "message": {
            "id": "u1",
            "session_id": "s1",
            "role": "user",
            "content": "hi",
            "status": "complete",
            "created_at": "2026-01-01T00:00:00+00:00",
            "client_id": "c1",
        },
    }
    connection = ScriptedConnection(WELCOME, user, _assistant(4, "a1"))
    client = WireClient(connection)
    await client.read_welcome()
    assert await client.chat("hi", client_id="c1") == "a1"
    assert connection.sent == [{"type": "chat", "content": "hi", "client_id": "c1"}]


async def test_a_first_frame_other_than_welcome_is_refused() -> None:
    client = WireClient(ScriptedConnection({"type": "pong"}))
    with pytest.raises(FrameError):
        await client.read_welcome()


async def test_a_silent_server_times_out() -> None:
    client = WireClient(ScriptedConnection(), timeout=0.05)
    with pytest.raises(TimeoutError):
        await client.recv()


async def test_finding_13_a_long_message_goes_out_as_compact_utf_8() -> None:
    # 16,000 'é' with json.dumps' defaults is a 96 KB frame (\u00e9 each, and spaces);
    # compact UTF-8 is ~32 KB, inside any frame limit sized for the character limit.
    raw: list[str] = []

    class RawConnection(ScriptedConnection):
        async def send(self, message: str) -> None:
            raw.append(message)

    client = WireClient(RawConnection(WELCOME))
    await client.send({"type": "chat", "content": "é" * 16_000})
    [frame] = raw
    assert len(frame.encode()) < 32_100
    assert orjson.loads(frame) == {"type": "chat", "content": "é" * 16_000}
    assert ", " not in frame and '": ' not in frame
