#!/usr/bin/env python
"""How many idle WebSocket connections one gateway process holds, and its memory per connection.

Starts Redis and one ``chatrelay gateway`` (``--baseline``: also the bare
relay of ``bare_relay.py``, for the same figures through the thinnest
path), raises the open-files limit for itself and what it starts, then
opens idle sessions (each its own user and session, from 127.0.x.y source
addresses, spread over client processes) in stages up to ``--target``. At
every stage it waits until the connections are up, lets the process settle,
and reads its resident memory (VmRSS). Memory per connection is the RSS
growth over the connections opened (and, less sensitive to one-time costs,
the slope between the first and the last stage). Stops at the target, at
the first stage that cannot be reached, or after ``--max-seconds``.
Prints a table; writes ``bench/results/connections-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import results
import uvloop
import websockets
from processes import Servers, loopback_address, raise_open_files_limit, rss_bytes
from relays import start_bare, start_gateway

CONNECT_CONCURRENCY = 100
SETTLE_SECONDS = 2.0


async def _hold(
    index: int, processes: int, url: str, target: Any, opened: Any, failed: Any, stop: Any
) -> None:
    sockets = []
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
    tag = f"c{int(time.time())}p{index}"
    number = 0

    async def one(n: int) -> None:
        address = loopback_address(n * processes + index)
        async with limit:
            try:
                ws = await websockets.connect(
                    f"{url}?user_id={tag}u{n}&session_id={tag}s{n}",
                    local_addr=(address, 0),
                    compression=None,
                    open_timeout=30,
                    ping_interval=None,
                    close_timeout=1,
                )
                await ws.recv()  # welcome
            except Exception:
                with failed.get_lock():
                    failed.value += 1
                return
        sockets.append(ws)
        with opened.get_lock():
            opened.value += 1

    pending: set[asyncio.Task[None]] = set()
    while not stop.is_set():
        want = target.value - number
        for _ in range(max(0, want)):
            pending.add(asyncio.create_task(one(number)))
            number += 1
        pending = {t for t in pending if not t.done()}
        await asyncio.sleep(0.05)
    for task in pending:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def _client_main(*args: Any) -> None:
    raise_open_files_limit()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_hold(*args))


def climb(
    name: str,
    url: str,
    pid: int,
    stages: list[int],
    processes: int,
    deadline: float,
) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    opened, failed = context.Value("i", 0), context.Value("i", 0)
    stop = context.Event()
    targets = [context.Value("i", 0) for _ in range(processes)]
    workers = [
        context.Process(
            target=_client_main,
            daemon=True,
            args=(i, processes, url, targets[i], opened, failed, stop),
        )
        for i in range(processes)
    ]
    time.sleep(SETTLE_SECONDS)
    rss0 = rss_bytes(pid)
    rows = []
    try:
        for worker in workers:
            worker.start()
        for stage in stages:
            for i, value in enumerate(targets):
                value.value = stage // processes + (1 if i < stage % processes else 0)
            started = time.monotonic()
            while opened.value + failed.value < stage and time.monotonic() < deadline:
                time.sleep(0.1)
            reached = opened.value
            took = time.monotonic() - started
            time.sleep(SETTLE_SECONDS)
            rss = rss_bytes(pid)
            rows.append(
                {
                    "stage": stage,
                    "open": opened.value,
                    "failed": failed.value,
                    "seconds": round(took, 1),
                    "rss_mib": round(rss / 2**20, 1),
                    "kib_per_connection": round((rss - rss0) / 1024 / max(1, reached), 2),
                }
            )
            print(f"{name}: {rows[-1]}", file=sys.stderr, flush=True)
            if reached < stage or time.monotonic() >= deadline:
                break
    finally:
        stop.set()
        for worker in workers:
            worker.join(15)
            if worker.is_alive():
                worker.terminate()
    first, last = rows[0], rows[-1]
    slope = (
        (last["rss_mib"] - first["rss_mib"]) * 1024 / (last["open"] - first["open"])
        if last["open"] > first["open"]
        else float("nan")
    )
    return {
        "rss_before_mib": round(rss0 / 2**20, 1),
        "stages": rows,
        "max_open": max(r["open"] for r in rows),
        "kib_per_connection": last["kib_per_connection"],
        "kib_per_connection_slope": round(slope, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", type=int, default=10_000, help="connections (max 19,000)")
    parser.add_argument(
        "--stages",
        default="1000,2500,5000,7500,10000",
        help="connection counts to measure at (capped by --target)",
    )
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--baseline", action="store_true", help="also measure the bare relay")
    parser.add_argument("--max-seconds", type=float, default=150.0, help="per relay")
    args = parser.parse_args(argv)
    if not 1 <= args.target <= 19_000:
        parser.error("--target must be 1..19000 (the open-files hard limit is 20,000)")
    limit = raise_open_files_limit()
    stages = sorted({min(int(s), args.target) for s in args.stages.split(",")} | {args.target})
    measured: dict[str, Any] = {}
    relays = [("chatrelay", start_gateway)] + ([("baseline", start_bare)] if args.baseline else [])
    for name, start in relays:
        with (
            tempfile.TemporaryDirectory(prefix="chatrelay-conn-") as tmp,
            Servers(Path(tmp)) as servers,
        ):
            url, _, pids = start(servers)
            measured[name] = climb(
                name, url, pids["relay"], stages, args.clients, time.monotonic() + args.max_seconds
            )
    rows = []
    for name, m in measured.items():
        for stage in m["stages"]:
            rows.append(
                [
                    name,
                    stage["stage"],
                    stage["open"],
                    stage["failed"],
                    stage["seconds"],
                    stage["rss_mib"],
                    stage["kib_per_connection"],
                ]
            )
    print(
        results.table(
            [
                "relay",
                "stage",
                "open",
                "failed",
                "s to open",
                "RSS MiB",
                "KiB/conn (RSS growth / open)",
            ],
            rows,
        )
    )
    summary = [
        [
            name,
            m["max_open"],
            m["rss_before_mib"],
            m["kib_per_connection"],
            m["kib_per_connection_slope"],
        ]
        for name, m in measured.items()
    ]
    print(
        results.table(
            ["relay", "max open", "RSS before MiB", "KiB/conn", "KiB/conn slope"], summary
        )
    )
    path = results.write(
        "connections",
        {
            "target": args.target,
            "open_files_limit": limit,
            "client_processes": args.clients,
            **measured,
        },
    )
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
