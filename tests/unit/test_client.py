"""``ChatClient`` against a scripted WebSocket server: what it hands out after a reconnect."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.asyncio.server import ServerConnection

from chatrelay.client import ChatClient
from tests.timing import seconds


def _event(offset: int) -> str:
    return json.dumps(
        {"type": "chunk", "offset": offset, "message_id": "m", "seq": offset, "delta": f"{offset} "}
    )


async def _receive_offsets(client: ChatClient, last: int) -> list[int]:
    offsets: list[int] = []
    async with asyncio.timeout(seconds(10)):
        while not offsets or offsets[-1] < last:
            frame: dict[str, Any] = await client.receive()
            offsets.append(frame["offset"])
    return offsets


async def test_a_live_event_that_overtakes_the_replay_is_not_handed_out_before_it() -> None:
    # The gateway sends live events right after welcome; the client's resume
    # arrives a moment later. An event in that moment must not skip the replay.
    resumes: list[dict[str, Any]] = []
    connections = 0
    handed_out = asyncio.Event()  # the client gave the test offsets 1 and 2

    async def serve(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await ws.send(
                json.dumps(
                    {"type": "welcome", "node": "g1", "session_id": "s", "epoch": "e", "offset": 0}
                )
            )
            for offset in (1, 2):
                await ws.send(_event(offset))
            await handed_out.wait()
            ws.transport.abort()  # the node dies: no close frame
            return
        await ws.send(
            json.dumps(
                {"type": "welcome", "node": "g2", "session_id": "s", "epoch": "e", "offset": 5}
            )
        )
        await ws.send(_event(6))  # live, before the resume is read
        resumes.append(json.loads(await ws.recv()))
        for offset in (3, 4, 5, 6, 7):  # the replay of everything after 2, then live
            await ws.send(_event(offset))
        await ws.wait_closed()

    async with websockets.serve(serve, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with ChatClient(f"ws://127.0.0.1:{port}", "s") as client:
            offsets = await _receive_offsets(client, 2)
            handed_out.set()
            offsets += await _receive_offsets(client, 7)
            assert offsets == [1, 2, 3, 4, 5, 6, 7]
            assert resumes == [{"type": "resume", "epoch": "e", "offset": 2}]
            assert (client.gaps, client.duplicates, client.connects) == (1, 0, 2)


async def test_frames_of_a_new_epoch_wait_for_the_reset() -> None:
    handed_out = asyncio.Event()  # the client gave the test offsets 1 to 3

    async def serve(ws: ServerConnection) -> None:
        if not hasattr(serve, "seen"):
            serve.seen = True  # type: ignore[attr-defined]
            await ws.send(
                json.dumps(
                    {
                        "type": "welcome",
                        "node": "g1",
                        "session_id": "s",
                        "epoch": "old",
                        "offset": 0,
                    }
                )
            )
            for offset in (1, 2, 3):
                await ws.send(_event(offset))
            await handed_out.wait()
            ws.transport.abort()
            return
        await ws.send(
            json.dumps(
                {"type": "welcome", "node": "g2", "session_id": "s", "epoch": "new", "offset": 0}
            )
        )
        await ws.send(_event(4))  # offset 4 of the new epoch: not the old epoch's next
        await ws.recv()
        await ws.send(json.dumps({"type": "reset", "epoch": "new", "offset": 4}))
        await ws.send(_event(5))
        await ws.wait_closed()

    async with websockets.serve(serve, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with ChatClient(f"ws://127.0.0.1:{port}", "s") as client:
            frames = [await client.receive(timeout=seconds(10)) for _ in range(3)]
            handed_out.set()
            frames += [await client.receive(timeout=seconds(10)) for _ in range(2)]
            assert [(f["type"], f["offset"]) for f in frames] == [
                ("chunk", 1),
                ("chunk", 2),
                ("chunk", 3),
                ("reset", 4),
                ("chunk", 5),
            ]
            assert (client.epoch, client.offset) == ("new", 5)
