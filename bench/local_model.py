#!/usr/bin/env python
"""Responsiveness while the bundled local model generates (issue 6's 50 ms target).

Two measurements, once assertions in the test suite, measured here instead:

- ``loop``: the local model (llama.cpp, SmolLM2) streams ``--streams`` answers
  at once in this process while a ticker sleeps 5 ms in a loop; the gaps
  between its ticks show how long the event loop was held.
- ``pings``: ``chatrelay serve`` with ``CHATRELAY_MODEL=auto`` answers
  ``--streams`` sessions at once while another socket pings every 20 ms; the
  ping/pong round trips cross two processes and the kernel.

The target is printed beside each figure; nothing is asserted. Needs the local
model (``make local-model``). Prints a table; writes
``bench/results/local_model-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import results
import websockets
from processes import Servers, free_port

TICK_SECONDS = 0.005
PING_EVERY_SECONDS = 0.02
# Issue 6: the loop answers within 50 ms while the model generates; over the network
# 95% of pings must meet that and none may stall for more than 250 ms.
TARGET_LOOP_GAP_MS = 50.0
TARGET_PONG_P95_MS = 50.0
TARGET_PONG_WORST_MS = 250.0
QUESTIONS = (
    "Name three colours.",
    "Tell me about the sea.",
    "What is bread?",
    "Say something about dragons.",
)
ANSWER_TIMEOUT_SECONDS = 300.0


async def loop_gaps(streams: int, max_tokens: int) -> list[float]:
    """Tick gaps (seconds) while the in-process local model answers ``streams`` questions."""
    from chatrelay.llm.base import GenerationParams, Turn
    from chatrelay.llm.local import LocalModel

    model = LocalModel()
    await model.load()
    gaps: list[float] = []
    generating = True

    async def tick() -> None:
        last = time.monotonic()
        while generating:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async def answer(question: str) -> str:
        params = GenerationParams(max_tokens=max_tokens)
        return "".join([d async for d in model.stream([Turn("user", question)], params)])

    ticker = asyncio.create_task(tick())
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
            await asyncio.gather(*(answer(q) for q in QUESTIONS[:streams]))
    finally:
        generating = False
        await ticker
        await model.aclose()
    return gaps


async def pong_round_trips(ws_url: str, streams: int) -> list[float]:
    """Ping round trips (seconds) on one socket while ``streams`` sessions generate."""

    async def chat(question: str) -> None:
        url = f"{ws_url}?session_id=s-{uuid.uuid4().hex[:12]}&user_id=bench"
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "chat", "content": question}))
            while json.loads(await ws.recv())["type"] != "complete":
                pass

    trips: list[float] = []
    async with websockets.connect(f"{ws_url}?user_id=pinger") as pinger:
        await pinger.recv()  # welcome
        answering = asyncio.gather(*(chat(q) for q in QUESTIONS[:streams]))
        async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
            while not answering.done():
                sent = time.monotonic()
                await pinger.send('{"type": "ping"}')
                while json.loads(await pinger.recv())["type"] != "pong":
                    pass
                trips.append(time.monotonic() - sent)
                await asyncio.sleep(PING_EVERY_SECONDS)
        await answering
    return trips


def _summary(seconds: list[float]) -> dict[str, float]:
    """``results.summarize_ms`` plus the p95 the targets are stated in."""
    summary = results.summarize_ms(seconds)
    summary["p95"] = round(results.percentile(sorted(seconds), 95) * 1000, 3)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["loop", "pings"], help="run one measurement")
    parser.add_argument(
        "--streams",
        type=int,
        default=3,
        choices=range(1, len(QUESTIONS) + 1),
        help="answers generated at once",
    )
    parser.add_argument("--max-tokens", type=int, default=40, help="tokens per answer")
    args = parser.parse_args(argv)
    payload: dict[str, object] = {"streams": args.streams, "max_tokens": args.max_tokens}
    rows: list[tuple[object, ...]] = []
    if args.only in (None, "loop"):
        gaps = _summary(asyncio.run(loop_gaps(args.streams, args.max_tokens)))
        payload["loop_gap_ms"] = gaps
        rows.append(
            (
                "loop gap, in process",
                gaps["p50"],
                gaps["p95"],
                gaps["max"],
                f"max <= {TARGET_LOOP_GAP_MS:.0f}",
            )
        )
    if args.only in (None, "pings"):
        with (
            tempfile.TemporaryDirectory(prefix="chatrelay-local-") as tmp,
            Servers(Path(tmp)) as servers,
        ):
            port = free_port()
            servers.chatrelay(
                "serve",
                port,
                {
                    "CHATRELAY_MODEL": "auto",
                    "CHATRELAY_MAX_TOKENS": str(args.max_tokens),
                    # The probe pings at 50/s, past a socket's default frame budget (10/s).
                    "CHATRELAY_FRAME_RATE_PER_SECOND": "100",
                },
            )
            trips = asyncio.run(pong_round_trips(f"ws://127.0.0.1:{port}/ws/chat", args.streams))
        pongs = _summary(trips)
        payload["pong_round_trip_ms"] = pongs
        rows.append(
            (
                "ping round trip, serve",
                pongs["p50"],
                pongs["p95"],
                pongs["max"],
                f"p95 <= {TARGET_PONG_P95_MS:.0f}, max <= {TARGET_PONG_WORST_MS:.0f}",
            )
        )
    print(results.table(["measure (ms)", "p50", "p95", "max", "target"], rows))
    print(f"wrote {results.write('local_model', payload)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
