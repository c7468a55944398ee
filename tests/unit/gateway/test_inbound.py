"""The inbound dispatcher: client frames routed, bad input answered, the socket carries on.

Runs on the memory engine and a SQLite store in a temp directory; the
worker is the stand-in of conftest.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.types import Message

from chatrelay.auth.base import Principal
from chatrelay.config import Settings
from chatrelay.engine import create_engine
from chatrelay.engine.base import Engine
from chatrelay.gateway import inbound as inbound_module
from chatrelay.gateway.chats import Conversations
from chatrelay.gateway.credentials import SocketCredential
from chatrelay.gateway.inbound import Inbound
from chatrelay.gateway.outbound import Outbound
from chatrelay.gateway.relay import Relay
from chatrelay.gateway.snapshots import Snapshots
from chatrelay.gateway.throttle import FrameThrottle
from chatrelay.store.conversations import ConversationStore
from tests.timing import seconds
from tests.unit.gateway.conftest import Worker

ANA = Principal("ana")


@dataclass
class Socket:
    inbound: Inbound
    outbound: Outbound
    engine: Engine
    store: ConversationStore
    worker: Worker

    async def read(self, *frames: str | bytes) -> list[dict[str, Any]]:
        """Feed ``frames`` then a disconnect; every frame the socket queued in answer."""
        messages: asyncio.Queue[Message] = asyncio.Queue()
        for frame in frames:
            key = "text" if isinstance(frame, str) else "bytes"
            messages.put_nowait({"type": "websocket.receive", key: frame})
        messages.put_nowait({"type": "websocket.disconnect", "code": 1000})
        async with asyncio.timeout(seconds(5)):
            await self.inbound.read(messages.get)
        return await self.sent()

    async def sent(self) -> list[dict[str, Any]]:
        frames: list[dict[str, Any]] = []

        async def send_text(text: str) -> None:
            frames.append(orjson.loads(text))

        self.outbound.send_reconnect("end of test")
        async with asyncio.timeout(seconds(5)):
            await self.outbound.write(send_text)
        return frames[:-1]


@pytest.fixture
async def socket(tmp_path: Path) -> AsyncIterator[Socket]:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/chat.db")
    engine = create_engine("memory://")
    worker = Worker()
    async with (
        ConversationStore(settings.database_url) as store,
        aclosing(Relay(engine.broker)) as relay,
    ):
        conversations = Conversations(settings, engine, store, worker)
        await store.claim_session("s1", "ana")
        outbound = Outbound(maxsize=64)
        inbound = Inbound(
            credential=SocketCredential(ANA, engine.coordination),
            session_id="s1",
            conversations=conversations,
            snapshots=Snapshots(relay, store.checkpoint, settings.resolved_max_frame_bytes),
            outbound=outbound,
            throttle=FrameThrottle(
                burst=settings.frame_rate_burst,
                per_second=settings.frame_rate_per_second,
                flood_limit=settings.frame_flood_limit,
                flood_window=settings.frame_flood_window_seconds,
            ),
            max_message_chars=settings.max_message_chars,
            max_frame_bytes=settings.resolved_max_frame_bytes,
        )
        yield Socket(inbound, outbound, engine, store, worker)


async def test_a_bad_frame_is_answered_with_its_code_and_the_socket_carries_on(
    socket: Socket,
) -> None:
    frames = await socket.read("not json", b'["a list"]', '{"type": "shout"}', '{"type": "ping"}')
    assert [frame.get("code") for frame in frames[:3]] == ["bad_frame", "bad_frame", "unknown_type"]
    assert all(frame["type"] == "error" and frame["detail"] for frame in frames[:3])
    assert frames[3] == {"type": "pong"}


async def test_a_chat_starts_a_generation(socket: Socket) -> None:
    frames = await socket.read('{"type": "chat", "content": "hello", "client_id": "c-1"}')
    assert frames == []  # the answer streams through the session's log, not from here
    [request] = socket.worker.started
    assert (request.user_id, request.session_id, request.message) == ("ana", "s1", "hello")
    assert request.client_id == "c-1"


async def test_a_refused_chat_names_its_client_id(socket: Socket) -> None:
    frames = await socket.read('{"type": "chat", "content": "  ", "client_id": "c-2"}')
    assert frames == [
        {
            "type": "error",
            "code": "invalid_message",
            "detail": "'content' is empty",
            "client_id": "c-2",
        }
    ]
    assert socket.worker.started == []


async def test_a_refused_cancel_names_its_message_id(socket: Socket) -> None:
    [frame] = await socket.read('{"type": "cancel", "message_id": "m-9"}')
    assert (frame["type"], frame["code"], frame["message_id"]) == ("error", "not_found", "m-9")


async def test_a_resume_replays_the_log_after_the_clients_offset(socket: Socket) -> None:
    for n in (1, 2, 3):
        await socket.engine.broker.publish("s1", {"type": "chunk", "delta": str(n)})
    epoch, _ = await socket.engine.broker.position("s1")
    socket.outbound.start_at(3)  # the welcome said 3; the client held 1
    frames = await socket.read(orjson.dumps({"type": "resume", "epoch": epoch, "offset": 1}))
    assert [(frame["offset"], frame["delta"]) for frame in frames] == [(2, "2"), (3, "3")]


async def test_a_resume_from_another_epoch_is_told_to_reset(socket: Socket) -> None:
    await socket.engine.broker.publish("s1", {"type": "chunk", "delta": "x"})
    epoch, latest = await socket.engine.broker.position("s1")
    frames = await socket.read('{"type": "resume", "epoch": "gone", "offset": 0}')
    assert frames == [{"type": "reset", "epoch": epoch, "offset": latest}]


async def test_finding_7_a_type_that_is_not_a_string_is_a_bad_frame_and_the_socket_carries_on(
    socket: Socket,
) -> None:
    frames = await socket.read('{"type": {}}', '{"type": [1]}', '{"type": "ping"}')
    assert [(frame["type"], frame.get("code")) for frame in frames] == [
        ("error", "bad_frame"),
        ("error", "bad_frame"),
        ("pong", None),
    ]


async def test_finding_7_an_unexpected_error_is_logged_once_and_answered(
    socket: Socket, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "my secret prompt"

    async def broken_start(request: object) -> None:
        raise RuntimeError(f"something inside broke on {secret}")

    monkeypatch.setattr(socket.worker, "start", broken_start)
    with caplog.at_level(logging.INFO, logger="chatrelay.gateway.inbound"):
        frames = await socket.read(
            orjson.dumps({"type": "chat", "content": secret}), '{"type": "ping"}'
        )
    assert [(frame["type"], frame.get("code")) for frame in frames] == [
        ("error", "internal"),
        ("pong", None),
    ]
    [record] = [r for r in caplog.records if r.name == "chatrelay.gateway.inbound"]
    assert "RuntimeError" in record.getMessage() and record.exc_info is None
    assert secret not in caplog.text and secret not in frames[0]["detail"]


async def test_finding_7_a_nul_is_refused_before_any_store_sees_it(socket: Socket) -> None:
    nul = '{"type": "chat", "content": "nul \\u0000 inside", "client_id": "c-3"}'
    surrogate = '{"type": "chat", "content": "lone \\ud800", "client_id": "c-4"}'
    frames = await socket.read(nul, surrogate, '{"type": "ping"}')
    assert [(f["type"], f.get("code"), f.get("client_id")) for f in frames] == [
        ("error", "invalid_message", "c-3"),
        ("error", "bad_frame", None),  # JSON text with a lone surrogate is not valid UTF-8
        ("pong", None, None),
    ]
    assert socket.worker.started == []


@pytest.mark.parametrize(
    ("raw", "limit", "too_big"),
    [
        ("a" * 100, 100, False),
        ("a" * 101, 100, True),
        ("é" * 50, 100, False),  # 100 bytes
        ("é" * 51, 100, True),  # 102 bytes though 51 characters
        ("€" * 33, 100, False),  # 99 bytes
        ("€" * 34, 100, True),  # 102 bytes
        (b"x" * 101, 100, True),
    ],
)
def test_the_frame_limit_counts_utf8_bytes(raw: str | bytes, limit: int, too_big: bool) -> None:
    assert inbound_module._too_big(raw, limit) is too_big
