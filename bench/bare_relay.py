#!/usr/bin/env python
"""The baseline's relay: a bare redis-py subscriber forwarding to a bare ``websockets`` server.

The thinnest path a chunk can take from Redis to a browser in Python: one
pub/sub connection (hiredis), one dict from channel to sockets, ``send`` in
the reader loop. No auth, no registry, no store, no offsets checked, no
queues, no metrics. ``GET /ws/chat?session_id=S`` subscribes the socket to
chatrelay's channel name for S and says ``{"type":"welcome","offset":0}``.
Started by ``bench/baseline.py`` (and ``bench/fanout.py --baseline``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis
import uvloop
from websockets.asyncio.server import ServerConnection, serve

CHANNEL_PREFIX = b"chat:stream:"
WELCOME = '{"type":"welcome","offset":0}'


async def main(port: int, redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub()
    sockets: dict[bytes, set[ServerConnection]] = {}
    lock = asyncio.Lock()
    await pubsub.subscribe("bench:bare:hello")  # listen() needs one subscription

    async def reader() -> None:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            for ws in sockets.get(message["channel"], ()):
                with contextlib.suppress(Exception):
                    await ws.send(message["data"], text=True)

    async def handler(ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path).query)  # type: ignore[union-attr]
        channel = CHANNEL_PREFIX + query.get("session_id", [""])[0].encode()
        async with lock:
            members = sockets.setdefault(channel, set())
            if not members:
                await pubsub.subscribe(channel)
            members.add(ws)
        try:
            await ws.send(WELCOME)
            await ws.wait_closed()
        finally:
            async with lock:
                members.discard(ws)
                if not members:
                    sockets.pop(channel, None)
                    await pubsub.unsubscribe(channel)

    task = asyncio.create_task(reader())
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=20,
        max_size=64 * 1024,
        backlog=4096,
    ) as server:
        await server.serve_forever()
    task.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="redis://127.0.0.1:PORT/0")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main(args.port, args.redis))
