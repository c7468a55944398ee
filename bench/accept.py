#!/usr/bin/env python
"""How many new sockets per second one gateway process takes from ``connect`` to ``welcome``.

Starts Redis and one ``chatrelay gateway`` (and, with ``--baseline``, the
bare relay of ``bare_relay.py`` in the same run), raises the open-files
limit, then has ``--clients`` client processes open ``--sockets`` sockets
as fast as they can (at most ``--concurrency`` handshakes in flight per
process), each its own user and session (a reconnect names its session, so
these do too), from 127.0.x.y source addresses. The rate is the sockets
welcomed over the time from the first connect to the last welcome; the
table also gives each process's CPU share over that time, so a limit of the
relay can be told from a limit of the clients. The sockets stay open until
the last one is welcomed, then all close.
Prints a table; writes ``bench/results/accept-<timestamp>.json``.
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
from processes import Servers, cpu_seconds, loopback_address, raise_open_files_limit
from relays import start_bare, start_gateway

SETTLE_SECONDS = 1.0
# A socket not welcomed this long after its connect counts as failed.
WELCOME_TIMEOUT = 30.0


async def _open_all(
    index: int, processes: int, url: str, count: int, concurrency: int, go: Any, out: Any
) -> None:
    limit = asyncio.Semaphore(concurrency)
    tag = f"a{int(time.time())}p{index}"
    sockets = []
    failed = 0
    last_welcome = 0.0

    async def one(n: int) -> None:
        nonlocal failed, last_welcome
        async with limit:
            try:
                ws = await websockets.connect(
                    f"{url}?user_id={tag}u{n}&session_id={tag}s{n}",
                    local_addr=(loopback_address(n * processes + index), 0),
                    compression=None,
                    open_timeout=30,
                    ping_interval=None,
                    close_timeout=1,
                )
                await asyncio.wait_for(ws.recv(), WELCOME_TIMEOUT)  # the welcome
            except Exception:
                failed += 1
                return
            last_welcome = time.time()
            sockets.append(ws)

    go.wait()
    started = time.time()
    await asyncio.gather(*(one(n) for n in range(count)))
    out.put(
        {"started": started, "last_welcome": last_welcome, "open": len(sockets), "failed": failed}
    )
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def _client_main(*args: Any) -> None:
    raise_open_files_limit()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_open_all(*args))


def measure(
    name: str, url: str, pids: dict[str, int], sockets: int, processes: int, concurrency: int
) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    go, out = context.Event(), context.Queue()
    shares = [
        sockets // processes + (1 if i < sockets % processes else 0) for i in range(processes)
    ]
    workers = [
        context.Process(
            target=_client_main,
            daemon=True,
            args=(i, processes, url, shares[i], concurrency, go, out),
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    time.sleep(SETTLE_SECONDS)
    cpu_before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    go.set()
    reports = [out.get(timeout=300) for _ in workers]
    cpu_after = {role: cpu_seconds(pid) for role, pid in pids.items()}
    for worker in workers:
        worker.join(30)
        if worker.is_alive():
            worker.terminate()
    began = min(r["started"] for r in reports)
    ended = max(r["last_welcome"] for r in reports)
    took = max(ended - began, 1e-9)
    opened = sum(r["open"] for r in reports)
    row = {
        "sockets": sockets,
        "welcomed": opened,
        "failed": sum(r["failed"] for r in reports),
        "seconds": round(took, 3),
        "per_second": round(opened / took),
        "cpu_share": {role: round((cpu_after[role] - cpu_before[role]) / took, 2) for role in pids},
        "relay_cpu_ms_per_socket": round(
            (cpu_after["relay"] - cpu_before["relay"]) * 1000 / max(1, opened), 2
        ),
    }
    print(f"{name}: {row}", file=sys.stderr, flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=3000, help="sockets to open (max 19,000)")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight each")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per relay")
    parser.add_argument("--baseline", action="store_true", help="also measure the bare relay")
    args = parser.parse_args(argv)
    if not 1 <= args.sockets <= 19_000:
        parser.error("--sockets must be 1..19000 (the open-files hard limit is 20,000)")
    raise_open_files_limit()
    measured: dict[str, list[dict[str, Any]]] = {}
    relays = [("chatrelay", start_gateway)] + ([("baseline", start_bare)] if args.baseline else [])
    for name, start in relays:
        with (
            tempfile.TemporaryDirectory(prefix="chatrelay-accept-") as tmp,
            Servers(Path(tmp)) as servers,
        ):
            url, _, pids = start(servers)
            measured[name] = [
                measure(name, url, pids, args.sockets, args.clients, args.concurrency)
                for _ in range(args.rounds)
            ]
    rows = [
        [
            name,
            i + 1,
            r["welcomed"],
            r["failed"],
            r["seconds"],
            r["per_second"],
            r["cpu_share"]["relay"],
            r["cpu_share"]["redis"],
            r["relay_cpu_ms_per_socket"],
        ]
        for name, runs in measured.items()
        for i, r in enumerate(runs)
    ]
    print(
        results.table(
            [
                "relay",
                "round",
                "welcomed",
                "failed",
                "s",
                "sockets/s",
                "relay CPU",
                "redis CPU",
                "relay CPU ms/socket",
            ],
            rows,
        )
    )
    path = results.write(
        "accept",
        {
            "sockets": args.sockets,
            "clients": args.clients,
            "concurrency": args.concurrency,
            **measured,
        },
    )
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
