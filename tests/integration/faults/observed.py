"""Clients that record everything they are handed, and the invariants of issue 4.

For every chat the fault tests check, per client:

- the offsets of the log frames it was handed increase by exactly one within
  an epoch (no gap, no repeat); a ``reset`` starts a new run;
- every assistant message it saw start ends with a final status, its chunks
  are numbered 1, 2, 3 ... and join to the text of its ``complete``;
- the store (``GET /api/history``) holds that same text and status.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from chatrelay.client import ChatClient
from chatrelay.exceptions import ClientClosed
from chatrelay.protocol.server_frames import ServerFrame, WireMessage
from chatrelay.wire_client import Turn, chunk_seqs, first_offset, gather_turn, log_offset
from tests.timing import seconds, wait_until

FINAL = ("completed", "cancelled", "failed", "interrupted")


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def new_session() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


@dataclass
class Observed:
    """A ``ChatClient`` whose frames are read in the background, with arrival times."""

    client: ChatClient
    source: str
    frames: list[ServerFrame] = field(default_factory=list)
    turns: dict[str, Turn] = field(default_factory=dict)
    arrivals: list[float] = field(default_factory=list)
    welcome_offset: int = 0
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, ws_url: str, session_id: str, user_id: str, source: str = "127.0.0.1"
    ) -> Observed:
        client = ChatClient(ws_url, session_id, user_id, local_addr=(source, 0))
        await client.start(timeout=seconds(20))
        observed = cls(client, source, welcome_offset=client.offset)
        observed._reader = asyncio.create_task(observed._read())
        return observed

    async def _read(self) -> None:
        with contextlib.suppress(ClientClosed):
            while True:
                frame = await self.client.receive()
                self.arrivals.append(time.monotonic())
                self.frames.append(frame)
                gather_turn(self.turns, frame)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.client.close()

    # -- waiting

    async def wait_for(
        self, predicate: Any, timeout: float, what: str = "", start: int = 0
    ) -> ServerFrame:
        """The first frame from index ``start`` for which ``predicate`` holds (waits)."""
        deadline = time.monotonic() + timeout
        index = start
        while True:
            while index < len(self.frames):
                frame = self.frames[index]
                index += 1
                if predicate(frame):
                    return frame
            if time.monotonic() > deadline:
                raise AssertionError(f"no frame {what} within {timeout:.1f}s; {self.describe()}")
            await asyncio.sleep(0.01)

    def describe(self) -> str:
        """What this client holds, for a failure message: the last frames, each turn's
        chunk count and last offset, its reconnects, and how long it has been quiet."""
        kinds = [f["type"] for f in self.frames[-8:]]
        turns = {
            m[:8]: (len(t.chunks), log_offset(t.chunks[-1]) if t.chunks else None)
            for m, t in self.turns.items()
        }
        quiet = time.monotonic() - self.arrivals[-1] if self.arrivals else None
        return (
            f"last {kinds}; turns (chunks, last offset) {turns}; node {self.client.node}; "
            f"connects {self.client.connects}; close codes {self.client.close_codes}; "
            f"gaps dropped {self.client.gaps}; duplicates {self.client.duplicates}; "
            f"offset problems {offset_problems(self)[:5]}; quiet for {quiet} s"
        )

    async def chat(self, content: str, timeout: float | None = None) -> str:
        """Send a chat; the assistant message id once its ``message`` frame arrives."""
        client_id = await self.client.chat(content)
        start = len(self.frames)
        await self.wait_for(
            lambda f: (
                (f.get("type") == "message" and f["message"].get("client_id") == client_id)
                or (f.get("type") == "error" and f.get("client_id") == client_id)
            ),
            timeout or seconds(20),
            f"user message {client_id}",
            start,
        )
        errors = [
            f
            for f in self.frames[start:]
            if f.get("type") == "error" and f.get("client_id") == client_id
        ]
        if errors:
            raise ChatRefused(errors[0]["code"], errors[0])
        frame = await self.wait_for(
            lambda f: f.get("type") == "message" and f["message"]["role"] == "assistant",
            timeout or seconds(20),
            "assistant message",
            start,
        )
        message_id: str = frame["message"]["id"]
        return message_id

    def turn(self, message_id: str) -> Turn:
        return self.turns.get(message_id) or Turn(message_id)

    async def wait_chunks(self, message_id: str, count: int, timeout: float | None = None) -> None:
        await wait_until(
            lambda: len(self.turn(message_id).chunks) >= count,
            f"{count} chunks of {message_id}",
            timeout or seconds(20),
        )

    async def wait_complete(self, message_id: str, timeout: float | None = None) -> ServerFrame:
        return await self.wait_for(
            lambda f: f["type"] == "complete" and f["message_id"] == message_id,
            timeout or seconds(30),
            f"complete of {message_id}",
        )

    async def history(self) -> list[WireMessage]:
        """The session's stored messages, through nginx from this client's address."""
        client = self.client
        base = client.url.replace("ws://", "http://", 1).split("/ws/")[0]
        transport = httpx.AsyncHTTPTransport(local_address=self.source)
        async with httpx.AsyncClient(
            base_url=base, transport=transport, timeout=seconds(10)
        ) as http:
            response = await http.get(
                f"/api/history/{client.session_id}", params={"user_id": client.user_id}
            )
        response.raise_for_status()
        messages: list[WireMessage] = response.json()["messages"]
        return messages


class ChatRefused(Exception):
    def __init__(self, code: str, frame: ServerFrame) -> None:
        super().__init__(f"{code}: {frame}")
        self.code = code


def offset_problems(observed: Observed) -> list[str]:
    """Gaps and repeats in the offsets this client was handed (each epoch on its own)."""
    problems = []
    expected = observed.welcome_offset + 1
    for frame in observed.frames:
        if frame["type"] == "reset":
            expected = frame["offset"] + 1
        elif (first := first_offset(frame)) is not None:
            if first != expected:
                kind = "repeat" if first < expected else "gap"
                problems.append(f"{kind}: offset {first} where {expected} was due")
            # A coalesced chunk covers first .. offset.
            expected = frame["offset"] + 1
    return problems


def _whole_messages(observed: Observed) -> list[str]:
    """Assistant messages this client saw start after its last ``reset`` (seen whole)."""
    seen: list[str] = []
    for frame in observed.frames:
        if frame["type"] == "reset":
            seen.clear()
        elif frame["type"] == "message" and frame["message"]["role"] == "assistant":
            seen.append(frame["message"]["id"])
    return seen


async def check_invariants(observed: Observed, *, expect_complete: bool = True) -> dict[str, Any]:
    """Assert the invariants of issue 4 for one client; return what was checked."""
    problems = offset_problems(observed)
    stored = {m["id"]: m for m in await observed.history()}
    checked = 0
    for message_id in _whole_messages(observed):
        turn = observed.turn(message_id)
        seqs = [seq for chunk in turn.chunks for seq in chunk_seqs(chunk)]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"{message_id}: chunk seqs {seqs[:5]}... not 1, 2, 3 ...")
        complete, text = turn.complete, turn.text
        if complete is None:
            if expect_complete:
                problems.append(f"{message_id}: no complete")
            continue
        if complete["status"] not in FINAL:
            problems.append(f"{message_id}: status {complete['status']}")
        if complete["content"] != text:
            problems.append(
                f"{message_id}: assembled {len(text)} chars != complete "
                f"{len(complete['content'])} chars"
            )
        message = stored.get(message_id)
        if message is None:
            problems.append(f"{message_id}: not stored")
            continue
        if (message["content"], message["status"]) != (text, complete["status"]):
            problems.append(
                f"{message_id}: stored {message['status']} "
                f"{len(message['content'])} chars != seen {complete['status']} "
                f"{len(text)} chars"
            )
        checked += 1
    streaming = [
        m["id"] for m in stored.values() if m["role"] == "assistant" and m["status"] not in FINAL
    ]
    if streaming and expect_complete:
        problems.append(f"stored but not final: {streaming}")
    assert not problems, "\n".join(problems)
    return {"messages": checked, "frames": len(observed.frames)}
