#!/usr/bin/env python
"""What a tab joining a long answer receives, with and without join snapshots.

Starts ``chatrelay serve`` (all-in-one, memory engine, simulated model at
``--chunk-delay``) four times: the session log holding the whole answer or
capped at ``--log-cap`` events, each with snapshots off
(``CHATRELAY_SNAPSHOT_MIN_CHUNKS=0``: the old replay or reset)
and on (the default). In each, a writer asks for a ``--words``-chunk answer;
at chunk ``--join-at`` a new tab connects and resumes from offset 0, as the
web UI does. Prints and writes ``bench/results/join_snapshot-<timestamp>.json``:
the frames and bytes the tab received until the answer's ``complete``, how it
caught up (snapshot, replay or reset) and whether its assembled text is the
answer (after a reset it is not: the tab must reload history over REST).

Example: ``python bench/join_snapshot.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import results
from processes import Servers

from chatrelay.harness.processes import free_port
from chatrelay.llm.simulated import numbered_answer
from chatrelay.wire_client import WireClient


def _assembled(frames: list[Any], message_id: str) -> str:
    """The answer's text as a client builds it: frames in offset order (repeats and
    frames ahead of a gap dropped), snapshot parts replacing what came before."""
    text, offset = "", 0
    for frame in frames:
        if frame["type"] == "snapshot":
            if frame["offset"] < offset or frame["message_id"] != message_id:
                continue
            text = text + frame["text"] if frame["part"] > 1 else frame["text"]
            offset = frame["offset"]
        elif frame["type"] in ("message", "chunk", "complete"):
            if frame["offset"] != offset + 1:
                continue
            offset = frame["offset"]
            if frame["type"] == "chunk" and frame["message_id"] == message_id:
                text += frame["delta"]
        elif frame["type"] == "reset":
            offset = frame["offset"]
    return text


async def _join(ws: str, words: int, join_at: int) -> dict[str, Any]:
    query = {"session_id": f"s-{uuid.uuid4().hex[:12]}", "user_id": "bench-join"}
    writer = await WireClient.connect(ws, query, timeout=60, record=False)
    message_id = await writer.chat(f"#words={words}")
    while True:
        frame = await writer.recv()
        if frame["type"] == "chunk" and frame["seq"] >= join_at:
            break
    joined_at = writer.offset
    tab = await WireClient.connect(ws, query, timeout=60, record=False)
    assert tab.welcome is not None
    started = time.perf_counter()
    await tab.resume(tab.welcome["epoch"], 0, snapshot=True)
    frames: list[Any] = []
    sizes = 0
    # When the tab held the text up to the join: a snapshot's last part, or the replay
    # (after the live frames that overtook it) reaching the join's offset.
    caught_up: float | None = None
    replaying = False
    while not (frames and frames[-1]["type"] == "complete"):
        frame = await tab.recv()
        frames.append(frame)
        sizes += len(orjson.dumps(frame))
        offset = frame.get("offset", 0)
        if frame["type"] == "snapshot" and frame["part"] == frame["parts"]:
            replaying = True
        elif frame["type"] in ("message", "reset") and offset <= 2:
            replaying = True
        if caught_up is None and replaying and offset >= joined_at:
            caught_up = time.perf_counter() - started
    await tab.close()
    await writer.close()
    kinds = {frame["type"] for frame in frames}
    how = "snapshot" if "snapshot" in kinds else "reset" if "reset" in kinds else "replay"
    return {
        "frames": len(frames),
        "bytes": sizes,
        "snapshot_parts": sum(frame["type"] == "snapshot" for frame in frames),
        "caught_up_ms": None if caught_up is None else round(caught_up * 1000, 1),
        "how": how,
        "text_is_the_answer": _assembled(frames, message_id) == numbered_answer(words),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=3000)
    parser.add_argument("--join-at", type=int, default=2500)
    parser.add_argument("--log-cap", type=int, default=1000)
    parser.add_argument("--chunk-delay", type=float, default=0.002)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-join-") as tmp, Servers(Path(tmp)) as servers:
        for log_events in (args.words + 100, args.log_cap):
            for snapshots in (False, True):
                port = free_port()
                env = {
                    "CHUNK_DELAY": str(args.chunk_delay),
                    "CHATRELAY_ENGINE_URL": "memory://",
                    "CHATRELAY_MODEL": "simulated",
                    "CHATRELAY_MAX_TOKENS": str(args.words + 100),
                    "CHATRELAY_LOG_MAX_EVENTS": str(log_events),
                    "CHATRELAY_CHECKPOINT_SECONDS": "0.2",
                    "CHATRELAY_SNAPSHOT_MIN_CHUNKS": "32" if snapshots else "0",
                }
                name = f"serve-{log_events}-{'on' if snapshots else 'off'}"
                server = servers.chatrelay("serve", port, env, name=name)
                ws = server.url.replace("http://", "ws://") + "/ws/chat"
                row = asyncio.run(_join(ws, args.words, args.join_at))
                server.stop()
                row |= {"log_max_events": log_events, "snapshots": snapshots}
                rows.append(row)
                print(
                    f"log {log_events:>5} events, snapshots {'on ' if snapshots else 'off'}: "
                    f"{row['frames']:>5} frames, {row['bytes']:>7} bytes, {row['how']:<8} "
                    f"caught up in {row['caught_up_ms']} ms, "
                    f"text whole: {row['text_is_the_answer']}"
                )
    path = results.write("join_snapshot", {"parameters": vars(args), "rows": rows})
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
