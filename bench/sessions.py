"""Client sessions under load: several processes of WebSocket sessions that measure and check.

One Python process cannot both read 20,000 frames a second and time them
fairly on a 2-core machine, so the sessions are split over ``processes``
client processes (fork), each running its share on one uvloop event loop.
Every session connects from its own loopback source address (127.0.x.y),
then, when all are connected, either chats (the worker streams the answer)
or listens (a bench publisher streams into its session).

Each session checks what it receives, at the wire level (the lean client
here drops nothing; ``chatrelay.client.ChatClient`` would silently drop a
repeated offset, which is exactly what must be counted; it parses with
``chatrelay.wire_client.parse_server_frame`` like every client):

- every log frame's ``offset`` is the one after the previous: a jump counts
  the missing offsets as **lost**, a repeat counts as **duplicated**;
- the chunks of one message have ``seq`` 1, 2, 3, ... and their deltas, put
  together, equal the ``complete`` frame's ``content`` (**mismatched** if not);
- latency of every chunk: receive time minus its ``ts`` (the publisher's
  ``time.time()``, same machine, same clock); time to first token: from
  sending ``chat`` to the first chunk of its answer.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import random
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvloop
import websockets
from processes import raise_open_files_limit
from websockets.exceptions import ConnectionClosed

from chatrelay.wire_client import log_offset, parse_server_frame

# Connection attempts in flight per client process (a burst of thousands of
# handshakes at once only measures the listen backlog).
CONNECT_CONCURRENCY = 100
CONNECT_TIMEOUT_SECONDS = 30.0
# After the planned end, sessions get this long to receive their last frames.
DRAIN_SECONDS = 10.0


@dataclass(frozen=True)
class SessionSpec:
    """One session: who, which session (None: the server makes one), from which address."""

    user_id: str
    session_id: str | None
    local_addr: str


@dataclass(frozen=True)
class LoadPlan:
    """What the client processes do once every session is connected."""

    url: str  # ws://127.0.0.1:PORT/ws/chat
    sessions: Sequence[SessionSpec]
    processes: int = 2
    chat_text: str | None = None  # None: listen (a publisher streams), else chat this
    turns: int = 1  # chats per session, one after the other; or completes to wait for
    ramp_seconds: float = 2.0  # first chats spread over this long
    run_seconds: float = 30.0  # planned length of the traffic after "go"


@dataclass
class SessionTotals:
    """What the sessions of one or all client processes saw."""

    sessions: int = 0
    connected: int = 0
    connect_failed: int = 0
    closed_early: int = 0
    unfinished: int = 0
    frames: int = 0
    chunks: int = 0
    lost: int = 0
    duplicated: int = 0
    seq_errors: int = 0
    mismatched: int = 0
    completes: int = 0
    errors: int = 0
    first_chunk_at: float = 0.0
    last_chunk_at: float = 0.0
    # chunks received per 100 ms bin (Unix time * 10), for the steady-state rate
    bins: dict[int, int] = field(default_factory=dict)
    latencies: array = field(default_factory=lambda: array("d"))  # seconds
    ttft: array = field(default_factory=lambda: array("d"))  # seconds
    model_ttft_ms: list[float] = field(default_factory=list)  # usage.ttft_ms of completes
    error_codes: dict[str, int] = field(default_factory=dict)

    def merge(self, other: SessionTotals) -> None:
        for name in (
            "sessions",
            "connected",
            "connect_failed",
            "closed_early",
            "unfinished",
            "frames",
            "chunks",
            "lost",
            "duplicated",
            "seq_errors",
            "mismatched",
            "completes",
            "errors",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.first_chunk_at and (
            not self.first_chunk_at or other.first_chunk_at < self.first_chunk_at
        ):
            self.first_chunk_at = other.first_chunk_at
        self.last_chunk_at = max(self.last_chunk_at, other.last_chunk_at)
        for key, count in other.bins.items():
            self.bins[key] = self.bins.get(key, 0) + count
        self.latencies.extend(other.latencies)
        self.ttft.extend(other.ttft)
        self.model_ttft_ms.extend(other.model_ttft_ms)
        for code, count in other.error_codes.items():
            self.error_codes[code] = self.error_codes.get(code, 0) + count

    def steady_rate(self, start: float, end: float) -> float:
        """Chunks/s received between two Unix times (whole 100 ms bins)."""
        first, last = int(start * 10), int(end * 10)
        if last <= first:
            return 0.0
        return sum(self.bins.get(k, 0) for k in range(first, last)) / ((last - first) / 10)

    @property
    def chunks_per_second(self) -> float:
        span = self.last_chunk_at - self.first_chunk_at
        return self.chunks / span if span > 0 else 0.0


class _Session:
    """One socket's bookkeeping (see the module docstring for what is checked)."""

    def __init__(self, spec: SessionSpec, totals: SessionTotals) -> None:
        self.spec = spec
        self.totals = totals
        self.ws: Any = None
        self.offset: int | None = None
        self.seq: dict[str, int] = {}
        self.text: dict[str, list[str]] = {}
        self.completes = 0
        self.sent_at: float | None = None
        self.done = asyncio.Event()

    def on_frame(self, raw: str | bytes, now: float) -> None:
        totals = self.totals
        # The same frame definitions as every client, parsed without validation:
        # this loop reads tens of thousands of frames a second.
        frame: Any = parse_server_frame(raw)
        totals.frames += 1
        kind = frame["type"]
        offset = log_offset(frame)
        if offset is not None:
            if self.offset is not None:
                if offset <= self.offset:
                    totals.duplicated += 1
                    return
                if offset > self.offset + 1:
                    totals.lost += offset - self.offset - 1
            self.offset = offset
        if kind == "chunk":
            totals.chunks += 1
            totals.latencies.append(now - frame["ts"])
            if not totals.first_chunk_at:
                totals.first_chunk_at = now
            totals.last_chunk_at = now
            key = int(now * 10)
            totals.bins[key] = totals.bins.get(key, 0) + 1
            message_id = frame["message_id"]
            expected = self.seq.get(message_id, 0) + 1
            if frame["seq"] != expected:
                totals.seq_errors += 1
            self.seq[message_id] = frame["seq"]
            self.text.setdefault(message_id, []).append(frame["delta"])
            if self.sent_at is not None:
                totals.ttft.append(now - self.sent_at)
                self.sent_at = None
        elif kind == "complete":
            totals.completes += 1
            parts = self.text.pop(frame["message_id"], [])
            self.seq.pop(frame["message_id"], None)
            if "".join(parts) != frame.get("content"):
                totals.mismatched += 1
            usage = frame.get("usage") or {}
            if usage.get("ttft_ms") is not None:
                totals.model_ttft_ms.append(usage["ttft_ms"])
            self.completes += 1
            self.done.set()
        elif kind == "welcome":
            self.offset = frame.get("offset", 0)
        elif kind == "error":
            totals.errors += 1
            code = str(frame.get("code"))
            totals.error_codes[code] = totals.error_codes.get(code, 0) + 1
            if frame.get("client_id") is not None:
                self.sent_at = None
                self.done.set()  # that chat failed: on to the next turn


async def _connect(session: _Session, url: str, limit: asyncio.Semaphore) -> None:
    spec = session.spec
    query = f"user_id={spec.user_id}" + (
        f"&session_id={spec.session_id}" if spec.session_id else ""
    )
    async with limit:
        try:
            session.ws = await websockets.connect(
                f"{url}?{query}",
                local_addr=(spec.local_addr, 0),
                compression=None,
                max_size=None,
                open_timeout=CONNECT_TIMEOUT_SECONDS,
                ping_interval=None,
                close_timeout=2,
            )
            session.on_frame(
                await asyncio.wait_for(session.ws.recv(), CONNECT_TIMEOUT_SECONDS), time.time()
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake, ConnectionClosed):
            session.totals.connect_failed += 1
            if session.ws is not None:
                await session.ws.close()
            session.ws = None
            return
    session.totals.connected += 1


async def _read(session: _Session) -> None:
    try:
        async for raw in session.ws:
            session.on_frame(raw, time.time())
    except ConnectionClosed:
        pass
    if not session.done.is_set() or session.completes < session.turns_wanted:
        session.totals.closed_early += 1
    session.done.set()


async def _drive(session: _Session, plan: LoadPlan, go_at: float, end_at: float) -> None:
    """Chat ``turns`` times (chat mode) or wait for ``turns`` completes (listen mode)."""
    rng = random.Random(hash(session.spec.user_id))
    reader = asyncio.create_task(_read(session))
    try:
        if plan.chat_text is not None:
            await asyncio.sleep(max(0.0, go_at + rng.uniform(0, plan.ramp_seconds) - time.time()))
            for turn in range(plan.turns):
                if time.time() > end_at or reader.done():
                    break
                session.done.clear()
                session.sent_at = time.time()
                await session.ws.send(
                    orjson.dumps(
                        {
                            "type": "chat",
                            "content": plan.chat_text,
                            "client_id": f"{session.spec.user_id}-{turn}",
                        }
                    ).decode()
                )
                await asyncio.wait_for(session.done.wait(), end_at + DRAIN_SECONDS - time.time())
        else:
            while session.completes < plan.turns and not reader.done():
                session.done.clear()
                await asyncio.wait_for(session.done.wait(), end_at + DRAIN_SECONDS - time.time())
    except (TimeoutError, ConnectionClosed, ValueError):
        pass
    if session.completes < plan.turns:
        session.totals.unfinished += 1
    reader.cancel()
    await session.ws.close()


async def _client(
    index: int,
    plan: LoadPlan,
    specs: Sequence[SessionSpec],
    ready: Any,
    go: Any,
    go_time: Any,
    results: Any,
) -> None:
    totals = SessionTotals(sessions=len(specs))
    sessions = [_Session(spec, totals) for spec in specs]
    for session in sessions:
        session.turns_wanted = plan.turns  # type: ignore[attr-defined]
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
    await asyncio.gather(*(_connect(s, plan.url, limit) for s in sessions))
    ready.put((index, totals.connected))
    await asyncio.to_thread(go.wait)  # a multiprocessing Event: every client starts together
    go_at = go_time.value
    end_at = go_at + plan.run_seconds
    live = [s for s in sessions if s.ws is not None]
    await asyncio.gather(*(_drive(s, plan, go_at, end_at) for s in live))
    results.put((index, totals))


def _client_main(
    index: int,
    plan: LoadPlan,
    specs: Sequence[SessionSpec],
    ready: Any,
    go: Any,
    go_time: Any,
    results: Any,
) -> None:
    raise_open_files_limit()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_client(index, plan, specs, ready, go, go_time, results))


class ClientFleet:
    """The client processes of one plan: ``connect()``, then ``go()``, then ``wait()``."""

    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        context = multiprocessing.get_context("fork")
        self._ready = context.Queue()
        self._results = context.Queue()
        self._go = context.Event()
        self._go_time = context.Value("d", 0.0)
        count = max(1, min(plan.processes, len(plan.sessions)))
        shares = [list(plan.sessions[i::count]) for i in range(count)]
        self._processes = [
            context.Process(
                target=_client_main,
                daemon=True,
                name=f"bench-client-{i}",
                args=(i, plan, shares[i], self._ready, self._go, self._go_time, self._results),
            )
            for i in range(count)
        ]
        self.connected = 0

    def __enter__(self) -> ClientFleet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()  # our own child, by pid
            process.join(5)

    def connect(self, timeout: float = 120.0) -> int:
        """Start the processes; return once every session has connected (or failed to)."""
        for process in self._processes:
            process.start()
        deadline = time.monotonic() + timeout
        for _ in self._processes:
            _, connected = self._ready.get(timeout=max(0.1, deadline - time.monotonic()))
            self.connected += connected
        return self.connected

    def go(self, delay: float = 0.0) -> float:
        """Let the sessions run from ``delay`` seconds from now; the start (Unix time)."""
        start = time.time() + delay
        self._go_time.value = start
        self._go.set()
        return start

    def wait(self) -> SessionTotals:
        """Every process's totals, merged (bounded: the plan's run time plus the drain)."""
        plan = self.plan
        deadline = time.monotonic() + plan.run_seconds + plan.ramp_seconds + DRAIN_SECONDS + 30
        totals = SessionTotals()
        for _ in self._processes:
            try:
                _, part = self._results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            totals.merge(part)
        return totals


def session_specs(
    count: int,
    prefix: str,
    with_session_ids: bool,
    first_address: int = 0,
) -> list[SessionSpec]:
    """``count`` sessions, each its own user (no per-user limit applies) and source address."""
    from processes import loopback_address

    tag = f"{prefix}{os.getpid()}x{int(time.time())}"
    return [
        SessionSpec(
            user_id=f"{tag}u{i}",
            session_id=f"{tag}s{i}" if with_session_ids else None,
            local_addr=loopback_address(first_address + i),
        )
        for i in range(count)
    ]
