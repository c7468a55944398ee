"""New chats per second through ``cluster up``: TTFT while chats start at a steady Poisson rate.

    python bench/starts.py [--rates 50,100,200,300,400,600] [--step-seconds 5]
                           [--burst 1000] [--serial 200] [--code OTHER_TREE/src]

A cluster of 2 gateways and 2 workers behind nginx (``cluster up``) on a
throw-away PostgreSQL this script starts (the same for any ``--code``), the
simulated model with no delay and ``--max-tokens`` words per answer (the
start path is what is measured, not streaming). ``--sockets`` WebSockets
are opened beforehand, spread over loopback source addresses (nginx
``ip_hash``) and over ``--clients`` client processes; a chat is sent on a
socket whose previous answer is complete. Steps, in one run:

1. **serial**: ``--serial`` chats one at a time: the TTFT chatrelay adds (the
   model's own first delta takes microseconds here, measured and printed);
2. **rates**: each rate for ``--step-seconds``, arrivals a Poisson process (each
   client process draws exponential gaps at its share of the rate), until a
   step's TTFT p99 passes 50 ms;
3. **burst**: ``--burst`` chats, each at a uniformly random moment of one second.

TTFT: from sending ``chat`` to its answer's first ``chunk`` on the same socket.
An error frame counts by its code; a chat with no complete within
``ANSWER_TIMEOUT_SECONDS`` counts as unfinished. ``--code DIR`` runs the
cluster's processes from another source tree (a worktree of main: "before").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import results
import uvloop
import websockets
from processes import (
    Servers,
    cpu_meter,
    cpu_seconds,
    family_cpu_seconds,
    loopback_address,
    raise_open_files_limit,
)
from websockets.exceptions import ConnectionClosed

from chatrelay.harness.postgres import running_postgres
from chatrelay.harness.processes import free_port

P99_LIMIT_MS = 50.0
ANSWER_TIMEOUT_SECONDS = 30.0
CONNECT_CONCURRENCY = 50
PROMPT = "hello"


@dataclass
class StepResult:
    """What one client process saw in one step."""

    ttft: list[float] = field(default_factory=list)  # seconds
    sent: int = 0
    completed: int = 0
    unfinished: int = 0
    no_free_socket: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def merge(self, other: StepResult) -> None:
        self.ttft += other.ttft
        self.sent += other.sent
        self.completed += other.completed
        self.unfinished += other.unfinished
        self.no_free_socket += other.no_free_socket
        self.errors.update(other.errors)


class Socket:
    """One open WebSocket; one chat at a time on it."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.busy = False
        self.sent_at = 0.0
        self.first: asyncio.Future[float] | None = None
        self.done: asyncio.Future[str | None] | None = None

    async def read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                frame = orjson.loads(raw)
                kind = frame["type"]
                if kind == "chunk" and self.first is not None and not self.first.done():
                    self.first.set_result(time.perf_counter())
                elif kind == "complete" and self.done is not None and not self.done.done():
                    self.done.set_result(None)
                elif kind == "error" and self.done is not None and not self.done.done():
                    self.done.set_result(str(frame.get("code")))

    async def chat(self, step: StepResult, tag: str) -> None:
        loop = asyncio.get_running_loop()
        self.busy = True
        self.first, self.done = loop.create_future(), loop.create_future()
        step.sent += 1
        try:
            self.sent_at = time.perf_counter()
            await self.ws.send(orjson.dumps({"type": "chat", "content": PROMPT, "client_id": tag}))
            async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
                await asyncio.wait([self.first, self.done], return_when=asyncio.FIRST_COMPLETED)
                if self.first.done():
                    step.ttft.append(self.first.result() - self.sent_at)
                code = await self.done
            if code is None:
                step.completed += 1
            else:
                step.errors[code] += 1
        except (TimeoutError, ConnectionClosed):
            step.unfinished += 1
        finally:
            self.busy = False


async def _open(url: str, index: int, limit: asyncio.Semaphore) -> Socket | None:
    query = f"user_id=starts-{index}&session_id=starts-{os.getpid()}-{index}-{time.time_ns()}"
    async with limit:
        try:
            ws = await websockets.connect(
                f"{url}?{query}",
                local_addr=(loopback_address(index), 0),
                compression=None,
                open_timeout=30,
                ping_interval=None,
            )
            await asyncio.wait_for(ws.recv(), 30)  # welcome
        except (OSError, TimeoutError, websockets.InvalidHandshake, ConnectionClosed):
            return None
    return Socket(ws)


async def _run_step(sockets: list[Socket], command: tuple[Any, ...]) -> StepResult:
    step = StepResult()
    rng = random.Random()
    tasks: list[asyncio.Task[None]] = []
    counter = 0

    def free() -> Socket | None:
        idle = [s for s in sockets if not s.busy]
        return rng.choice(idle) if idle else None

    def launch(at: float) -> None:
        nonlocal counter
        socket = free()
        if socket is None:
            step.no_free_socket += 1
            return
        counter += 1
        socket.busy = True
        tasks.append(asyncio.create_task(socket.chat(step, f"c{counter}")))

    kind = command[0]
    start = time.perf_counter()
    if kind == "serial":
        for _ in range(command[1]):
            socket = free()
            assert socket is not None
            await socket.chat(step, "serial")
    elif kind == "poisson":
        rate, seconds = command[1], command[2]
        at = start
        while True:
            at += rng.expovariate(rate)
            if at - start >= seconds:
                break
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            launch(at)
    elif kind == "burst":
        moments = sorted(rng.uniform(0, 1.0) for _ in range(command[1]))
        for moment in moments:
            await asyncio.sleep(max(0.0, start + moment - time.perf_counter()))
            launch(start + moment)
    if tasks:
        await asyncio.gather(*tasks)
    return step


async def _client(url: str, indices: range, pipe: Any) -> None:
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
    opened = await asyncio.gather(*(_open(url, i, limit) for i in indices))
    sockets = [s for s in opened if s is not None]
    readers = [asyncio.create_task(s.read()) for s in sockets]
    pipe.send(len(sockets))
    while True:
        command = await asyncio.to_thread(pipe.recv)
        if command is None:
            break
        pipe.send(await _run_step(sockets, command))
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*(s.ws.close() for s in sockets), return_exceptions=True)


def _client_main(url: str, indices: range, pipe: Any) -> None:
    raise_open_files_limit()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_client(url, indices, pipe))


class Fleet:
    """Client processes, each with its share of the sockets, stepped together."""

    def __init__(self, url: str, sockets: int, clients: int) -> None:
        context = multiprocessing.get_context("fork")
        self.pipes = []
        self.processes = []
        share = math.ceil(sockets / clients)
        for c in range(clients):
            ours, theirs = context.Pipe()
            indices = range(c * share, min(sockets, (c + 1) * share))
            process = context.Process(target=_client_main, args=(url, indices, theirs))
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)
        self.connected = sum(pipe.recv() for pipe in self.pipes)

    def step(self, commands: list[tuple[Any, ...] | None]) -> StepResult:
        total = StepResult()
        busy = [pipe for pipe, command in zip(self.pipes, commands, strict=True) if command]
        for pipe, command in zip(self.pipes, commands, strict=True):
            if command:
                pipe.send(command)
        for pipe in busy:
            total.merge(pipe.recv())
        return total

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.kill()


def model_first_delta_ms(samples: int = 200) -> float:
    """The simulated model's own time to its first delta, no delay, p50 (ms)."""
    from chatrelay.llm.base import GenerationParams, Turn
    from chatrelay.llm.simulated import SimulatedModel

    async def measure() -> list[float]:
        model, out = SimulatedModel(0.0), []
        for _ in range(samples):
            started = time.perf_counter()
            stream = model.stream([Turn("user", PROMPT)], GenerationParams())
            await stream.__anext__()
            out.append(time.perf_counter() - started)
            await stream.aclose()  # type: ignore[attr-defined]
        return out

    return results.summarize_ms(asyncio.run(measure()))["p50"]


@contextlib.contextmanager
def _more_cpu(cpu: dict[str, float], postgres: int, clients: list[int]) -> Any:
    """Adds PostgreSQL (with its backends) and the client processes to ``cpu``."""
    start = time.monotonic()
    before = (family_cpu_seconds(postgres), sum(cpu_seconds(pid) for pid in clients))
    yield
    elapsed = max(time.monotonic() - start, 1e-9)
    cpu["postgres"] = round((family_cpu_seconds(postgres) - before[0]) / elapsed, 3)
    cpu["clients"] = round((sum(cpu_seconds(pid) for pid in clients) - before[1]) / elapsed, 3)


def _row(
    name: str, offered: float, step: StepResult, cpu: dict[str, float], seconds: float
) -> dict[str, Any]:
    ttft = results.summarize_ms(step.ttft)
    chats = max(step.sent, 1)
    return {
        "seconds": round(seconds, 3),
        # CPU each process spent per chat (ms): robust where latency is not (a shared box).
        "cpu_ms_per_chat": {k: round(v * seconds / chats * 1000, 2) for k, v in cpu.items()},
        "step": name,
        "offered_per_s": offered,
        "sent": step.sent,
        "completed": step.completed,
        "errors": dict(step.errors),
        "unfinished": step.unfinished,
        "no_free_socket": step.no_free_socket,
        "ttft_ms": ttft,
        "cpu_cores": cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,100,200,300,400,600")
    parser.add_argument("--step-seconds", type=float, default=5.0)
    parser.add_argument("--serial", type=int, default=200)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--sockets", type=int, default=1200)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=3)
    parser.add_argument("--code", help="run the cluster from this source tree's src/")
    parser.add_argument("--label", default="")
    parser.add_argument(
        "--redis-shards",
        type=int,
        default=0,
        help="run the engine on a Redis Cluster of this many masters (cluster up --redis-shards)",
    )
    args = parser.parse_args()
    raise_open_files_limit()
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chatrelay-starts-")))
        postgres = stack.enter_context(running_postgres())
        env = {
            "CHATRELAY_DATABASE_URL": postgres.create_database("starts"),
            "CHUNK_DELAY": "0",
            "CHATRELAY_MAX_TOKENS": str(args.max_tokens),
            "CHATRELAY_MAX_CONCURRENT_GENERATIONS": "100000",
        }
        if args.code:
            env["PYTHONPATH"] = str(Path(args.code).resolve())
        servers = stack.enter_context(Servers(run_dir))
        port = free_port()
        shards = ["--redis-shards", str(args.redis_shards)] if args.redis_shards else []
        cluster = servers.cluster(2, 2, port, env, *shards)
        pids = {k: v for k, v in cluster.pids.items() if k != "cluster"}
        fleet = Fleet(f"ws://127.0.0.1:{port}/ws/chat", args.sockets, args.clients)
        stack.callback(fleet.close)
        client_pids = [p.pid for p in fleet.processes if p.pid is not None]
        print(f"{fleet.connected} sockets open", file=sys.stderr)
        idle: list[tuple[Any, ...] | None] = [None] * (args.clients - 1)

        def run(name: str, offered: float, commands: list[tuple[Any, ...] | None]) -> StepResult:
            started = time.monotonic()
            with cpu_meter(pids) as cpu, _more_cpu(cpu, postgres.process.pid, client_pids):
                step = fleet.step(commands)
            rows.append(_row(name, offered, step, cpu, time.monotonic() - started))
            ttft = rows[-1]["ttft_ms"]
            per_chat = rows[-1]["cpu_ms_per_chat"]
            print(
                f"{name:>8}  CPU ms/chat {sum(per_chat.values()):.1f} {per_chat}", file=sys.stderr
            )
            print(
                f"{name:>8}  sent {step.sent:5d}  done {step.completed:5d}  errors "
                f"{dict(step.errors) or 0}  unfinished {step.unfinished}  TTFT p50 "
                f"{ttft['p50']:.1f} p90 {ttft['p90']:.1f} p99 {ttft['p99']:.1f} ms",
                file=sys.stderr,
            )
            return step

        run("warm-up", 0, [("serial", 50), *idle])
        if args.serial:
            run("serial", 0, [("serial", args.serial), *idle])
        for rate in (float(r) for r in args.rates.split(",") if r):
            share = rate / args.clients
            run(f"{rate:g}/s", rate, [("poisson", share, args.step_seconds)] * args.clients)
            if rows[-1]["ttft_ms"]["p99"] > P99_LIMIT_MS:
                break
            time.sleep(1.0)
        if args.burst:
            time.sleep(2.0)
            share = math.ceil(args.burst / args.clients)
            run("burst", args.burst, [("burst", share)] * args.clients)
    model_ms = model_first_delta_ms()
    under = [r for r in rows if r["offered_per_s"] and r["ttft_ms"]["p99"] <= P99_LIMIT_MS]
    print(
        results.table(
            ["step", "offered/s", "sent", "done", "errors", "TTFT p50", "p90", "p99", "max"],
            [
                [
                    r["step"],
                    r["offered_per_s"],
                    r["sent"],
                    r["completed"],
                    sum(r["errors"].values()) + r["unfinished"],
                    r["ttft_ms"]["p50"],
                    r["ttft_ms"]["p90"],
                    r["ttft_ms"]["p99"],
                    r["ttft_ms"]["max"],
                ]
                for r in rows
            ],
        )
    )
    best = max((r["offered_per_s"] for r in under if r["step"] != "burst"), default=0)
    print(f"model's own first delta p50: {model_ms} ms; best rate at p99 <= 50 ms: {best}/s")
    path = results.write(
        "starts",
        {"label": args.label, "code": args.code, "model_first_delta_ms": model_ms, "steps": rows},
    )
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
