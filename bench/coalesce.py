#!/usr/bin/env python
"""What a socket that reads at a tenth of the stream rate receives, with and without coalescing.

Starts ``chatrelay serve``'s app (all-in-one, memory engine, simulated model
at ``--chunk-delay`` seconds a chunk) in a child process whose listening
socket has ``SO_SNDBUF`` = ``--sndbuf`` (accepted sockets inherit it). On
loopback the kernel would otherwise let a socket's send buffer grow to
``tcp_wmem``'s maximum (4 MiB here) and hold a slow reader's whole backlog,
which a real path with a slow last hop does not (the buffer follows the
congestion window); bounded, the backlog waits in the gateway's send queue,
where coalescing acts. For each answer length of ``--words``, a writer asks
for a ``#words=N`` answer on a session two slow readers watch: one connected
with ``coalesce=1``, one without (v1), in the same run. Both read one frame
every ``--slow`` x ``--chunk-delay`` seconds from a socket with a small
receive buffer (``--rcvbuf``). Prints and writes
``bench/results/coalesce-<timestamp>.json``: for each reader the frames and
bytes it received until the answer's ``complete``, how many were coalesced,
how long after the chat the ``complete`` reached it, whether it was dropped
as too slow (4408: ``CHATRELAY_SEND_QUEUE_SIZE`` frames queued), and
whether its text is the answer.

Example: ``python bench/coalesce.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import results
import uvicorn
import websockets
from processes import LOAD_ENVIRONMENT, Servers
from websockets.exceptions import ConnectionClosed

from chatrelay.app_factory import create_all_in_one_app
from chatrelay.config import Settings
from chatrelay.harness.processes import free_port
from chatrelay.harness.readiness import http_ok
from chatrelay.llm.simulated import numbered_answer
from chatrelay.wire_client import WireClient, first_offset, parse_server_frame


async def _slow_reader(
    ws: str, query: dict[str, str], pace: float, rcvbuf: int, ready: asyncio.Event
) -> dict[str, Any]:
    """Read one frame every ``pace`` seconds until the answer's ``complete`` (or a close)."""
    parts = urlsplit(ws)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    # No keepalive: a ping's answer waits behind the backlog this reader is slow to read.
    connection = await websockets.connect(
        f"{ws}?{urlencode(query)}", sock=sock, max_size=None, max_queue=1, ping_interval=None
    )
    welcome = parse_server_frame(await connection.recv())
    assert welcome["type"] == "welcome"
    ready.set()
    frames = byte_count = coalesced = 0
    text, offset, message_id, status = "", welcome["offset"], None, None
    closed: int | None = None
    started = time.perf_counter()
    try:
        while True:
            raw = await connection.recv()
            frames += 1
            byte_count += len(raw)
            frame = parse_server_frame(raw)
            first = first_offset(frame)
            if first is not None:
                assert first == offset + 1, (first, offset)  # nothing lost, nothing twice
                offset = frame["offset"]
            if frame["type"] == "message" and frame["message"]["role"] == "assistant":
                message_id = frame["message"]["id"]
            elif frame["type"] == "chunk":
                text += frame["delta"]
                coalesced += "from_offset" in frame
            elif frame["type"] == "complete" and frame["message_id"] == message_id:
                status = frame["status"]
                break
            await asyncio.sleep(pace)
    except ConnectionClosed as exc:
        closed = exc.rcvd.code if exc.rcvd else None
    await connection.close()
    return {
        "frames": frames,
        "bytes": byte_count,
        "coalesced_frames": coalesced,
        "complete_after_s": None if closed else round(time.perf_counter() - started, 2),
        "closed": closed,
        "status": status,
        "text": text,
    }


async def _run(ws: str, words: int, pace: float, rcvbuf: int) -> dict[str, Any]:
    query = {"session_id": f"s-{uuid.uuid4().hex[:12]}", "user_id": "bench-coalesce"}
    writer = await WireClient.connect(ws, query, timeout=60, record=False)
    ready = [asyncio.Event(), asyncio.Event()]
    readers = [
        asyncio.create_task(_slow_reader(ws, query | {"coalesce": "1"}, pace, rcvbuf, ready[0])),
        asyncio.create_task(_slow_reader(ws, query, pace, rcvbuf, ready[1])),
    ]
    await asyncio.gather(*(event.wait() for event in ready))
    started = time.perf_counter()
    message_id = await writer.chat(f"#words={words}")
    while True:
        frame = await writer.recv()
        if frame["type"] == "complete" and frame["message_id"] == message_id:
            break
    streamed = time.perf_counter() - started
    on, off = await asyncio.gather(*readers)
    await writer.close()
    answer = numbered_answer(words)
    for row in (on, off):
        row["text_is_the_answer"] = row.pop("text") == answer
    return {"words": words, "stream_s": round(streamed, 2), "coalesce": on, "v1": off}


def _line(name: str, row: dict[str, Any]) -> str:
    end = (
        f"closed {row['closed']}"
        if row["closed"]
        else f"complete after {row['complete_after_s']:>6} s"
    )
    return (
        f"  {name:<9} {row['frames']:>6} frames {row['bytes']:>9} bytes "
        f"({row['coalesced_frames']:>4} coalesced), {end}, "
        f"{row['status']}, text whole: {row['text_is_the_answer']}"
    )


def serve(port: int, sndbuf: int) -> None:
    """The bench's gateway (``--serve``): the all-in-one app, each socket's send buffer bounded."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    app = create_all_in_one_app(Settings())
    config = uvicorn.Config(
        app, fd=listener.fileno(), log_config=None, ws_ping_interval=None, ws_max_size=2**20
    )
    uvicorn.Server(config).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", default="3000,20000", help="answer lengths, comma-separated")
    parser.add_argument("--chunk-delay", type=float, default=0.0005)
    parser.add_argument("--slow", type=float, default=10.0, help="reader is this many times slower")
    parser.add_argument("--rcvbuf", type=int, default=4096)
    parser.add_argument("--sndbuf", type=int, default=65536)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.sndbuf)
        return
    lengths = [int(n) for n in args.words.split(",")]
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-coalesce-") as tmp,
        Servers(Path(tmp)) as servers,
    ):
        port = free_port()
        env = {
            **LOAD_ENVIRONMENT,
            "CHUNK_DELAY": str(args.chunk_delay),
            "CHATRELAY_ENGINE_URL": "memory://",
            "CHATRELAY_MODEL": "simulated",
            "CHATRELAY_MAX_TOKENS": str(max(lengths) + 100),
            "CHATRELAY_DATABASE_URL": f"sqlite+aiosqlite:///{Path(tmp) / 'coalesce.db'}",
        }
        command = [sys.executable, __file__, "--serve", str(port), "--sndbuf", str(args.sndbuf)]
        server = servers.spawn("serve-coalesce", command, f"http://127.0.0.1:{port}", env)
        servers.wait(server, http_ok(f"{server.url}/health"), "GET /health")
        ws = server.url.replace("http://", "ws://") + "/ws/chat"
        for words in lengths:
            row = asyncio.run(_run(ws, words, args.chunk_delay * args.slow, args.rcvbuf))
            rows.append(row)
            print(f"{words} chunks streamed in {row['stream_s']} s; readers at 1/{args.slow:g}:")
            print(_line("coalesce", row["coalesce"]))
            print(_line("v1", row["v1"]))
        server.stop()
    path = results.write("coalesce", {"parameters": vars(args), "rows": rows})
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
