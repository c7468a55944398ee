"""``ChatClient`` and coalesced chunks (v1.1), against a scripted WebSocket server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import websockets
from websockets.asyncio.server import ServerConnection

from chatrelay.client import ChatClient
from chatrelay.wire_client import chunk_seqs, first_offset, parse_server_frame
from tests.timing import seconds

Serve = Callable[[ServerConnection, int], Awaitable[None]]


def welcome(offset: int) -> str:
    return json.dumps(
        {"type": "welcome", "node": "g", "session_id": "s", "epoch": "e", "offset": offset}
    )


def chunk(first: int, last: int | None = None) -> str:
    """A chunk of ``m`` at ``first`` (seq = offset), or one covering ``first`` .. ``last``."""
    last = first if last is None else last
    frame: dict[str, Any] = {
        "type": "chunk",
        "offset": last,
        "message_id": "m",
        "seq": last,
        "delta": "".join(f"{n} " for n in range(first, last + 1)),
        "ts": 0.0,
    }
    if last != first:
        frame |= {"from_offset": first, "from_seq": first}
    return json.dumps(frame)


async def scripted(
    serve: Serve, client: ChatClient, frames: int, first: asyncio.Event | None = None
) -> list[dict[str, Any]]:
    """Run ``client`` against ``serve`` (called with each connection and its number,
    from 1) and return the first ``frames`` frames it hands out; ``first`` is set
    once the first one was handed out."""
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await serve(ws, connections)
        await ws.wait_closed()

    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        client.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with client:
            got: list[Any] = [await client.receive(timeout=seconds(10))]
            if first is not None:
                first.set()
            got += [await client.receive(timeout=seconds(10)) for _ in range(frames - 1)]
            return got


def text(frames: list[dict[str, Any]]) -> str:
    return "".join(frame["delta"] for frame in frames)


async def test_the_client_asks_for_coalesced_chunks_and_hands_each_out_once() -> None:
    queries: list[dict[str, list[str]]] = []

    async def serve(ws: ServerConnection, _: int) -> None:
        assert ws.request is not None
        queries.append(parse_qs(urlsplit(ws.request.path).query))
        await ws.send(welcome(0))
        for frame in (chunk(1), chunk(2, 6), chunk(4, 6), chunk(7)):  # 4 .. 6 again: a repeat
            await ws.send(frame)

    client = ChatClient("ws://unused", "s")
    frames = await scripted(serve, client, 3)
    assert queries[0]["coalesce"] == ["1"]
    assert [(f.get("from_offset"), f["offset"]) for f in frames] == [(None, 1), (2, 6), (None, 7)]
    assert text(frames) == "1 2 3 4 5 6 7 "
    assert (client.offset, client.coalesced_frames, client.duplicates) == (7, 1, 1)


async def test_a_client_may_keep_one_frame_per_chunk() -> None:
    queries: list[dict[str, list[str]]] = []

    async def serve(ws: ServerConnection, _: int) -> None:
        assert ws.request is not None
        queries.append(parse_qs(urlsplit(ws.request.path).query))
        await ws.send(welcome(0))
        await ws.send(chunk(1))

    await scripted(serve, ChatClient("ws://unused", "s", coalesce=False), 1)
    assert "coalesce" not in queries[0]


async def test_a_coalesced_frame_past_a_gap_waits_for_the_replay() -> None:
    resumes: list[dict[str, Any]] = []
    first_seen = asyncio.Event()

    async def serve(ws: ServerConnection, connection: int) -> None:
        if connection == 1:
            await ws.send(welcome(0))
            await ws.send(chunk(1))
            await first_seen.wait()
            ws.transport.abort()  # the node dies: no close frame
            return
        await ws.send(welcome(5))
        await ws.send(chunk(6, 9))  # live, before the resume is read: past a gap
        resumes.append(json.loads(await ws.recv()))
        for frame in (chunk(2, 5), chunk(6, 9), chunk(10)):
            await ws.send(frame)

    client = ChatClient("ws://unused", "s")
    frames = await scripted(serve, client, 4, first_seen)
    assert resumes == [{"type": "resume", "epoch": "e", "offset": 1}]
    assert [(f.get("from_offset"), f["offset"]) for f in frames] == [
        (None, 1),
        (2, 5),
        (6, 9),
        (None, 10),
    ]
    assert text(frames) == "".join(f"{n} " for n in range(1, 11))
    assert client.gaps == 1


async def test_a_frame_overlapping_what_the_client_holds_makes_it_reconnect_and_resume() -> None:
    # The server never sends one (it folds only offsets a socket never sent);
    # if one comes anyway, its delta cannot be cut: a new connection's resume
    # from the client's offset brings the rest exactly.
    resumes: list[dict[str, Any]] = []

    async def serve(ws: ServerConnection, connection: int) -> None:
        if connection == 1:
            await ws.send(welcome(0))
            for frame in (chunk(1), chunk(2), chunk(3), chunk(2, 6)):
                await ws.send(frame)
            return
        await ws.send(welcome(6))
        resumes.append(json.loads(await ws.recv()))
        await ws.send(chunk(4, 6))

    client = ChatClient("ws://unused", "s")
    frames = await scripted(serve, client, 4)
    assert resumes == [{"type": "resume", "epoch": "e", "offset": 3}]
    assert text(frames) == "1 2 3 4 5 6 "
    assert client.connects == 2


def test_the_range_a_chunk_covers() -> None:
    ranges = []
    for raw in (chunk(4), chunk(5, 9)):
        frame = parse_server_frame(raw)
        assert frame["type"] == "chunk"
        ranges.append((first_offset(frame), list(chunk_seqs(frame))))
    assert ranges == [(4, [4]), (5, [5, 6, 7, 8, 9])]
