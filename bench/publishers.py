"""Bench publishers: stream chunks into N sessions at a fixed rate, straight into Redis.

They stand in for workers so that a relay (one chatrelay gateway, or the
baseline's bare relay) is the only thing under test. Two kinds, the same
frames on the wire:

- ``chatrelay``: chatrelay's own ``publish.lua`` (offset, capped log, pub/sub
  in one script), exactly what a worker's ``RedisBroker.publish`` runs;
- ``bare``: a plain ``PUBLISH`` of the frame with the offset put in here.

Commands are pipelined per 5 ms tick so that the publisher (Python too) is
not what limits the rate. The chunk due times are spread evenly over the
sessions; a publisher that falls behind catches up (and says how far behind
it fell), so the offered load is kept.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
import uvloop

from chatrelay.engine.keys import KeySpace
from chatrelay.engine.redis_client import script_sources
from chatrelay.llm.simulated import LONG_ANSWER, split_words
from chatrelay.protocol.server_frames import ChunkEvent, CompleteEvent, chunk_frame, complete_frame

TICK_SECONDS = 0.005
WORDS = split_words(LONG_ANSWER)[:-1]  # every one ends with a space
LOG_MAX_EVENTS = 1000
LOG_TTL_MS = 300_000
OFFSET_TTL_MS = 7 * 24 * 3600 * 1000
KEYS = KeySpace()  # the gateway under test runs without a key prefix


def _message_id(session_id: str) -> str:
    return f"m-{session_id}"


def content_of(count: int) -> str:
    """The text of a message of ``count`` chunks (what ``complete`` carries)."""
    return "".join(WORDS[i % len(WORDS)] for i in range(count))


async def _publish(
    kind: str,
    redis_url: str,
    session_ids: Sequence[str],
    rate: float,
    start_at: float,
    seconds: float,
) -> dict[str, Any]:
    client = aioredis.from_url(redis_url)
    sha = await client.script_load(script_sources()["publish"])
    total_rate = rate * len(session_ids)
    total = int(total_rate * seconds)
    offsets = [0] * len(session_ids)
    sent = [0] * len(session_ids)
    published = 0
    behind = 0.0

    def add(pipe: Any, index: int, frame: ChunkEvent | CompleteEvent) -> None:
        session_id = session_ids[index]
        body = orjson.dumps(frame)
        if kind == "chatrelay":
            pipe.evalsha(
                sha,
                3,
                KEYS.session_meta(session_id),
                KEYS.session_log(session_id),
                KEYS.session_channel(session_id),
                body,
                "benchepoch",
                LOG_MAX_EVENTS,
                LOG_TTL_MS,
                OFFSET_TTL_MS,
                "",
                "0",  # one Redis: no writer check (_epoch.lua)
                "PUBLISH",
            )
        else:
            offsets[index] += 1
            pipe.publish(
                KEYS.session_channel(session_id), b'{"offset":%d,' % offsets[index] + body[1:]
            )

    await asyncio.sleep(max(0.0, start_at - time.time()))
    while published < total:
        now = time.time()
        due = min(total, int((now - start_at) * total_rate) + 1)
        if due > published:
            behind = max(behind, now - (start_at + published / total_rate))
            pipe = client.pipeline(transaction=False)
            ts = round(time.time(), 6)
            for number in range(published, due):
                index = number % len(session_ids)
                sent[index] += 1
                add(
                    pipe,
                    index,
                    chunk_frame(
                        _message_id(session_ids[index]),
                        sent[index],
                        WORDS[(sent[index] - 1) % len(WORDS)],
                        ts,
                    ),
                )
            await pipe.execute()
            published = due
        await asyncio.sleep(TICK_SECONDS)
    pipe = client.pipeline(transaction=False)
    for index, session_id in enumerate(session_ids):
        add(
            pipe,
            index,
            complete_frame(_message_id(session_id), "completed", content_of(sent[index])),
        )
    await pipe.execute()
    await client.aclose()
    return {"published": published, "max_behind_s": round(behind, 4)}


def _main(
    kind: str,
    redis_url: str,
    session_ids: Sequence[str],
    rate: float,
    start_at: float,
    seconds: float,
    out: Any,
) -> None:
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            out.put(runner.run(_publish(kind, redis_url, session_ids, rate, start_at, seconds)))
    except BaseException as exc:
        out.put({"error": repr(exc)})
        raise


class Publishers:
    """``count`` publisher processes sharing the sessions; ``start()`` then ``wait()``."""

    def __init__(
        self,
        kind: str,
        redis_url: str,
        session_ids: Sequence[str],
        rate: float,
        seconds: float,
        count: int = 1,
    ) -> None:
        context = multiprocessing.get_context("fork")
        self._out = context.Queue()
        self._args = (kind, redis_url, session_ids, rate, seconds, count)
        self._context = context
        self.processes: list[Any] = []
        self.seconds = seconds

    def start(self, start_at: float) -> list[int]:
        kind, redis_url, session_ids, rate, seconds, count = self._args
        for i in range(count):
            process = self._context.Process(
                target=_main,
                daemon=True,
                name=f"bench-publisher-{i}",
                args=(
                    kind,
                    redis_url,
                    list(session_ids[i::count]),
                    rate,
                    start_at,
                    seconds,
                    self._out,
                ),
            )
            process.start()
            self.processes.append(process)
        return [p.pid for p in self.processes]

    def wait(self) -> dict[str, Any]:
        published, behind = 0, 0.0
        for _ in self.processes:
            part = self._out.get(timeout=self.seconds + 60)
            if "error" in part:
                raise RuntimeError(f"a publisher failed: {part['error']}")
            published += part["published"]
            behind = max(behind, part["max_behind_s"])
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
        return {"published": published, "max_behind_s": behind}
