#!/usr/bin/env python
"""Reconnect storm: thousands of tabs on streaming sessions, one gateway SIGKILLed.

Starts ``chatrelay cluster up`` (``--gateways`` behind nginx ``ip_hash``,
``--workers``, Redis, PostgreSQL when installed) in a temporary folder. One
driver tab per session (``--sessions``) claims it with a short chat; then
``--clients`` client processes open ``--sockets`` more tabs spread over the
sessions, each a ``ChatClient`` from its own 127.0.x.y source address (so
``ip_hash`` spreads them over the gateways). Every session then streams a
long answer; once they are under way the gateway holding the most tabs is
sent SIGKILL (by the pid ``cluster up`` recorded), and every tab that was on
it reconnects through nginx to a survivor and resumes from its offset.

Measured per tab that was on the killed gateway: the time from the kill to
its ``welcome`` on a survivor and to the first event it was handed after the
kill; and for every tab, after ``--observe`` seconds: whether it holds every
offset its session's driver saw (none lost), whether the offsets it handed
out ever skipped or repeated (none repeated), and the duplicates it dropped
on the wire. Also the CPU share of each surviving process during the storm.
Prints a table; writes ``bench/results/storm-<timestamp>.json``. Traffic
goes to 127.0.0.0/8 only; bounded in sockets (19,000) and time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import logging
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import profiles
import results
import uvloop
from processes import Servers, cpu_meter, loopback_address, raise_open_files_limit

from chatrelay import wire_client
from chatrelay.client import ChatClient
from chatrelay.harness.processes import free_port
from chatrelay.wire_client import Turn, WireClient, gather_turn, log_offset

LONG_PROMPT = "explain the journey"
# A tab must be welcomed within this long, and the whole run ends within MAX_SECONDS.
OPEN_TIMEOUT_SECONDS = 120.0
MAX_SECONDS = 900.0
# Chunks every driver must have seen before the kill: the answers are under way.
CHUNKS_BEFORE_KILL = 10
# Tabs get this long after the observation ends to take in the frames in flight.
CATCH_UP_SECONDS = 3.0


class TimedClient(ChatClient):
    """A ``ChatClient`` that stamps each ``welcome`` (wall-clock: compared across processes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.welcomes: list[tuple[float, str]] = []

    async def _serve(self, connection: WireClient) -> bool:
        assert connection.welcome is not None
        self.welcomes.append((time.time(), connection.welcome["node"]))
        return await super()._serve(connection)


@dataclass
class Tab:
    """One tab: what it was handed, when, and where it was."""

    client: TimedClient
    session: int
    offsets: list[int] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    turns: dict[str, Turn] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        with contextlib.suppress(Exception):
            async for frame in self.client.frames():
                offset = log_offset(frame)
                if frame["type"] == "reset":
                    self.offsets.append(-1)  # a new run of offsets starts
                elif offset is not None:
                    self.offsets.append(offset)
                    self.arrivals.append(time.time())
                gather_turn(self.turns, frame)

    def report(self, killed_at: float, victim: str, latest: int) -> dict[str, Any]:
        nodes_before = [node for at, node in self.client.welcomes if at < killed_at]
        on_victim = bool(nodes_before) and nodes_before[-1] == victim
        after = [at for at, node in self.client.welcomes if at >= killed_at]
        first_event = next((at for at in self.arrivals if at >= killed_at), None)
        skipped, previous = 0, None
        for offset in self.offsets:
            if previous is not None and offset >= 0 and offset != previous + 1:
                skipped += 1
            previous = offset if offset >= 0 else None
        runs = [o for o in self.offsets if o >= 0]
        return {
            "on_victim": on_victim,
            "welcome_after_kill": after[0] - killed_at if after else None,
            "event_after_kill": first_event - killed_at if first_event else None,
            "behind": max(0, latest - (runs[-1] if runs else 0)),
            "skipped_or_repeated": skipped,
            "resets": self.offsets.count(-1),
            "duplicates_dropped": self.client.duplicates,
            "node": self.client.node,
            "close_codes": self.client.close_codes,
        }


class _Failures(logging.Handler):
    """Counts why reconnects failed (``ChatClient`` logs each failed connect)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.reasons: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.args:
            reason = record.args[0] if isinstance(record.args, tuple) else record.args
            self.reasons[type(reason).__name__ + ": " + str(reason)[:60]] += 1


async def _tabs_main(
    index: int,
    processes: int,
    url: str,
    sockets: int,
    sessions: int,
    open_timeout: float,
    pipe: Any,
) -> None:
    wire_client.OPEN_TIMEOUT_SECONDS = open_timeout
    failures = _Failures()
    client_log = logging.getLogger("chatrelay.client")
    client_log.setLevel(logging.INFO)
    client_log.addHandler(failures)
    mine = [t for t in range(sockets) if t % processes == index]
    limit = asyncio.Semaphore(100)
    tabs: list[Tab] = []

    async def open_tab(t: int) -> None:
        session = t % sessions
        client = TimedClient(
            url, f"storm-s{session}", f"storm-u{session}", local_addr=(loopback_address(t), 0)
        )
        async with limit:
            await client.start(timeout=OPEN_TIMEOUT_SECONDS)
        tab = Tab(client, session)
        tab.reader = asyncio.create_task(tab.read())
        tabs.append(tab)

    await asyncio.gather(*(open_tab(t) for t in mine))
    nodes: dict[str, int] = {}
    for tab in tabs:
        nodes[tab.client.node or "?"] = nodes.get(tab.client.node or "?", 0) + 1
    pipe.send({"open": len(tabs), "nodes": nodes})
    # Then: (killed_at, victim, latest offset per session), once the main process observed.
    killed_at, victim, latest = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    await asyncio.sleep(CATCH_UP_SECONDS)
    reports = [tab.report(killed_at, victim, latest[tab.session]) for tab in tabs]
    pipe.send((reports, dict(failures.reasons)))
    for tab in tabs:
        assert tab.reader is not None
        tab.reader.cancel()
    await asyncio.gather(*(tab.client.close() for tab in tabs), return_exceptions=True)


def _tabs_process(*args: Any) -> None:
    raise_open_files_limit()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_tabs_main(*args))


async def _claim(url: str, sessions: int) -> list[Tab]:
    """One driver tab per session, each claiming its session with a short chat."""
    drivers = []
    for session in range(sessions):
        client = TimedClient(url, f"storm-s{session}", f"storm-u{session}")
        await client.start(timeout=OPEN_TIMEOUT_SECONDS)
        tab = Tab(client, session)
        tab.reader = asyncio.create_task(tab.read())
        drivers.append(tab)
    for tab in drivers:
        await tab.client.chat("hello")
    await _until(lambda: all(any(t.complete for t in tab.turns.values()) for tab in drivers))
    return drivers


async def _until(predicate: Any, timeout: float = OPEN_TIMEOUT_SECONDS) -> None:
    async with asyncio.timeout(timeout):
        for _ in itertools.count():
            if predicate():
                return
            await asyncio.sleep(0.05)


def _with_children(pids: dict[str, int]) -> dict[str, int]:
    """``pids`` and their child processes (nginx's and PostgreSQL's workers do the work)."""
    found: dict[str, int] = {}
    for name, pid in pids.items():
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for n, child in enumerate(children):
            found[f"{name}-{n + 1}"] = int(child)
    return found


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)


async def storm(args: argparse.Namespace, servers: Servers) -> dict[str, Any]:
    cluster = servers.cluster(
        args.gateways,
        args.workers,
        free_port(),
        {
            "CHUNK_DELAY": str(args.chunk_delay),
            "CHATRELAY_MAX_CONCURRENT_GENERATIONS": "100000",
        },
    )
    url = cluster.url.replace("http://", "ws://", 1) + "/ws/chat"
    drivers = await _claim(url, args.sessions)
    context = multiprocessing.get_context("fork")
    pipes, workers = [], []
    for index in range(args.clients):
        here, there = context.Pipe()
        worker = context.Process(
            target=_tabs_process,
            daemon=True,
            args=(index, args.clients, url, args.sockets, args.sessions, args.open_timeout, there),
        )
        worker.start()
        pipes.append(here)
        workers.append(worker)
    loop = asyncio.get_running_loop()
    opened = [await loop.run_in_executor(None, pipe.recv) for pipe in pipes]
    nodes: dict[str, int] = {}
    for report in opened:
        for node, count in report["nodes"].items():
            nodes[node] = nodes.get(node, 0) + count
    victim = max(nodes, key=lambda node: nodes[node])
    print(f"tabs open: {nodes}; killing {victim}", file=sys.stderr, flush=True)
    for tab in drivers:
        await tab.client.chat(LONG_PROMPT)
    await _until(
        lambda: all(
            any(len(t.chunks) >= CHUNKS_BEFORE_KILL for t in tab.turns.values()) for tab in drivers
        )
    )
    survivors = {name: pid for name, pid in cluster.pids.items() if name != victim}
    metered = {
        **survivors,
        **_with_children({n: p for n, p in survivors.items() if n in ("nginx", "postgres")}),
        "driver": os.getpid(),
    }
    metered.update({f"tabs-{i}": worker.pid for i, worker in enumerate(workers) if worker.pid})
    survivor = next(name for name in survivors if name.startswith("gateway"))
    profile = Path(tempfile.mkdtemp(prefix="storm-profile-")) / "gateway.txt"
    sampler = profiles.record(survivors[survivor], args.observe, profile) if args.profile else None
    with cpu_meter(metered) as cpu:
        killed_at = time.time()
        os.kill(cluster.pids[victim], signal.SIGKILL)
        await asyncio.sleep(args.observe)
    if sampler is not None:
        sampler.wait(timeout=60)
    latest = [max(tab.offsets, default=0) for tab in drivers]
    for pipe in pipes:
        pipe.send((killed_at, victim, latest))
    received = [await loop.run_in_executor(None, pipe.recv) for pipe in pipes]
    tabs = [row for rows, _ in received for row in rows]
    failures: collections.Counter[str] = collections.Counter()
    for _, reasons in received:
        failures.update(reasons)
    for worker in workers:
        worker.join(30)
        if worker.is_alive():
            worker.terminate()
    for tab in drivers:
        if tab.reader is not None:
            tab.reader.cancel()
        await tab.client.close()
    moved = [tab for tab in tabs if tab["on_victim"]]
    welcomes = [t["welcome_after_kill"] for t in moved if t["welcome_after_kill"] is not None]
    events = [t["event_after_kill"] for t in moved if t["event_after_kill"] is not None]
    return {
        "sockets": len(tabs),
        "sessions": args.sessions,
        "chunk_delay": args.chunk_delay,
        "tabs_by_gateway": nodes,
        "victim": victim,
        "on_victim": len(moved),
        "resumed": len(welcomes),
        "not_resumed": len(moved) - len(welcomes),
        "welcome_p50_s": _percentile(welcomes, 0.5),
        "welcome_p99_s": _percentile(welcomes, 0.99),
        "welcome_max_s": max(welcomes, default=None),
        "first_event_p50_s": _percentile(events, 0.5),
        "first_event_p99_s": _percentile(events, 0.99),
        "within_5s": sum(1 for w in welcomes if w <= 5.0),
        "behind_at_end": sum(1 for t in tabs if t["behind"]),
        "skipped_or_repeated": sum(t["skipped_or_repeated"] for t in tabs),
        "resets": sum(t["resets"] for t in tabs),
        "duplicates_dropped": sum(t["duplicates_dropped"] for t in tabs),
        "cpu_share": dict(cpu),
        "failed_connects": dict(failures.most_common(10)),
        "close_codes": dict(collections.Counter(code for t in tabs for code in t["close_codes"])),
        "profile_top": [
            [frame, round(share, 3)]
            for frame, share in (profiles.top(profile, 25, inclusive=True) if sampler else [])
            if "chatrelay" in frame or "websockets" in frame or "redis" in frame
        ],
        "median_behind": statistics.median([t["behind"] for t in tabs]) if tabs else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=5000, help="tabs (max 19,000)")
    parser.add_argument("--sessions", type=int, default=100, help="streaming sessions")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-delay", type=float, default=0.5, help="seconds per word")
    parser.add_argument("--observe", type=float, default=15.0, help="seconds after the kill")
    parser.add_argument(
        "--open-timeout",
        type=float,
        default=wire_client.OPEN_TIMEOUT_SECONDS,
        help="seconds a tab's opening handshake may take before it retries (with backoff)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="sample the surviving gateway with py-spy"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.sockets <= 19_000:
        parser.error("--sockets must be 1..19000 (the open-files hard limit is 20,000)")
    raise_open_files_limit()
    with (
        tempfile.TemporaryDirectory(prefix="chatrelay-storm-") as tmp,
        Servers(Path(tmp)) as servers,
    ):
        run = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        with run:
            row = run.run(asyncio.wait_for(storm(args, servers), MAX_SECONDS))
    columns = [
        "sockets",
        "on_victim",
        "resumed",
        "within_5s",
        "welcome_p50_s",
        "welcome_p99_s",
        "welcome_max_s",
        "first_event_p99_s",
        "behind_at_end",
        "skipped_or_repeated",
        "resets",
    ]
    print(results.table(columns, [[row[c] for c in columns]]))
    busy = {name: share for name, share in row["cpu_share"].items() if share >= 0.01}
    print(f"CPU share during the storm (of one core): {busy}", file=sys.stderr)
    print(f"failed connects: {row['failed_connects']}", file=sys.stderr)
    print(f"close codes: {row['close_codes']}", file=sys.stderr)
    for frame, share in row["profile_top"]:
        print(f"  {share:6.1%}  {frame}", file=sys.stderr)
    path = results.write("storm", row)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
