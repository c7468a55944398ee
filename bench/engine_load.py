"""Load on an engine through chatrelay's own client: publisher and subscriber processes.

What a fleet of workers and gateways does to the engine's Redis, without the
workers and gateways: publishers call ``create_engine(url).broker.publish``
(the call a worker's generation loop makes for every chunk) and subscribers
hold ``broker.subscribe`` on a share of the sessions (a gateway's live
fan-out), so the same code runs against ``redis://`` and ``redis-cluster://``.

A step numbers its publishes 0, 1, 2, ... over the whole fleet: publish ``n``
is due at ``start + n / rate``, goes to session ``n % sessions`` and is made
by publisher ``n % publishers``. Each publisher keeps ``concurrency``
publishes in flight (a worker process's many generations); a publish's
latency runs from when it was due, not from when it was sent, so a publisher
that falls behind shows it in its latencies (no coordinated omission). A
chunk's ``ts`` is its due time, so the subscribers' latencies are due time to
delivery.

Every child reports ``ready`` over its pipe once it is connected (and
subscribed), and is then sent the start time; subscribers are sent ``stop``
once every publisher has finished and leave after a short drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from chatrelay.engine import create_engine
from chatrelay.engine.events import offset_of, timestamp_of
from chatrelay.exceptions import EngineError
from chatrelay.protocol.server_frames import chunk_frame

# Subscribers wait at most this long after ``stop`` for publishes still on the wire
# (they leave as soon as every expected one is in: only a loss costs the wait).
DRAIN_SECONDS = 5.0
# A child must report ready (connected, subscribed) within this time.
READY_TIMEOUT_SECONDS = 60.0
# Latencies kept per process (a uniform sample beyond this keeps the pipe small).
MAX_SAMPLES = 200_000
DELTA = "word "


@dataclass(frozen=True)
class Plan:
    """One step: ``rate`` publishes/s over ``sessions`` sessions for ``seconds``."""

    url: str
    session_ids: Sequence[str]
    rate: float
    seconds: float
    publishers: int
    concurrency: int

    @property
    def total(self) -> int:
        return int(self.rate * self.seconds)

    def expected(self, index: int) -> int:
        """Publishes that session ``index`` gets in the step."""
        count = len(self.session_ids)
        return self.total // count + (1 if index < self.total % count else 0)


def _sample(values: list[float]) -> list[float]:
    if len(values) <= MAX_SAMPLES:
        return values
    step = len(values) / MAX_SAMPLES
    return [values[int(i * step)] for i in range(MAX_SAMPLES)]


async def _publish(plan: Plan, index: int, pipe: Connection) -> dict[str, Any]:
    engine = create_engine(plan.url, node_id=f"bench-publisher-{index}")
    broker = engine.broker
    count = len(plan.session_ids)
    mine = range(index, plan.total, plan.publishers)
    latencies: list[float] = []
    errors: list[str] = []
    numbers = iter(mine)
    try:
        # Open the pool's connections (to every node of a cluster) before the clock starts.
        await asyncio.gather(
            *(broker.position(plan.session_ids[i % count]) for i in range(plan.concurrency))
        )
        pipe.send("ready")
        start = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)

        async def worker() -> None:
            for n in numbers:
                due = start + n / plan.rate
                delay = due - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                session_id = plan.session_ids[n % count]
                frame = chunk_frame(f"m-{session_id}", n // count + 1, DELTA, round(due, 6))
                try:
                    await broker.publish(session_id, frame)
                except EngineError as exc:
                    errors.append(str(exc))
                    continue
                latencies.append(time.time() - due)

        await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
        finished = time.time()
    finally:
        await engine.aclose()
    return {
        "published": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "finished_at": finished,
        "latencies": _sample(latencies),
    }


async def _subscribe(
    plan: Plan, indexes: Sequence[int], index: int, pipe: Connection
) -> dict[str, Any]:
    engine = create_engine(plan.url, node_id=f"bench-subscriber-{index}")
    loop = asyncio.get_running_loop()
    expected = {plan.session_ids[i]: plan.expected(i) for i in indexes}
    received = dict.fromkeys(expected, 0)
    gaps = dict.fromkeys(expected, 0)
    latencies: list[float] = []
    waiting = len([s for s, n in expected.items() if n > 0])
    all_in = asyncio.Event()
    if not waiting:
        all_in.set()

    async def follow(session_id: str, subscription: Any) -> None:
        nonlocal waiting
        last = 0
        async for event in subscription:
            now = time.time()
            offset = offset_of(event.data)
            if offset != last + 1:
                gaps[session_id] += 1
            last = offset
            received[session_id] += 1
            latencies.append(now - timestamp_of(event.data))
            if received[session_id] == expected[session_id]:
                waiting -= 1
                if waiting == 0:
                    all_in.set()

    try:
        async with contextlib.AsyncExitStack() as stack:
            tasks = []
            for session_id in expected:
                subscription = await stack.enter_async_context(engine.broker.subscribe(session_id))
                tasks.append(asyncio.create_task(follow(session_id, subscription)))
            pipe.send("ready")
            await loop.run_in_executor(None, pipe.recv)  # the start time
            stop = loop.run_in_executor(None, pipe.recv)  # "stop": every publisher is done
            done = asyncio.create_task(all_in.wait())
            await asyncio.wait([stop, done], return_when=asyncio.FIRST_COMPLETED)
            if not done.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done, DRAIN_SECONDS)
            else:
                await stop
            for task in tasks:
                task.cancel()
            done.cancel()
    finally:
        await engine.aclose()
    return {
        "sessions": len(expected),
        "expected": sum(expected.values()),
        "received": sum(received.values()),
        "lost": sum(max(0, expected[s] - received[s]) for s in expected),
        "gaps": sum(gaps.values()),
        "latencies": _sample(latencies),
    }


def _run(target: Any, *args: Any) -> None:
    pipe: Connection = args[-1]
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            pipe.send(runner.run(target(*args)))
    except BaseException as exc:
        with contextlib.suppress(OSError):
            pipe.send({"error": repr(exc)})
        raise


class Fleet:
    """The step's publisher and subscriber processes: ``start()``, ``go()``, ``wait()``."""

    def __init__(self, plan: Plan, subscribed: Sequence[int], subscribers: int) -> None:
        self.plan = plan
        context = multiprocessing.get_context("fork")
        self._pipes: dict[str, Connection] = {}
        self.processes: dict[str, Any] = {}
        jobs: list[tuple[str, Any, tuple[Any, ...]]] = [
            (f"publisher-{i}", _publish, (plan, i)) for i in range(plan.publishers)
        ]
        jobs += [
            (f"subscriber-{i}", _subscribe, (plan, list(subscribed[i::subscribers]), i))
            for i in range(subscribers)
        ]
        for name, target, args in jobs:
            ours, theirs = context.Pipe()
            self._pipes[name] = ours
            self.processes[name] = context.Process(
                target=_run, args=(target, *args, theirs), name=f"bench-{name}", daemon=True
            )

    def start(self) -> dict[str, int]:
        """Start every process and wait until each is connected (and subscribed); their pids."""
        for process in self.processes.values():
            process.start()
        for name, pipe in self._pipes.items():
            if not pipe.poll(READY_TIMEOUT_SECONDS):
                raise RuntimeError(f"{name} was not ready within {READY_TIMEOUT_SECONDS} s")
            reply = pipe.recv()
            if reply != "ready":
                raise RuntimeError(f"{name} failed: {reply}")
        return {name: process.pid for name, process in self.processes.items()}

    def go(self, delay: float) -> float:
        """Tell everyone the step starts ``delay`` seconds from now; that moment."""
        start = time.time() + delay
        for pipe in self._pipes.values():
            pipe.send(start)
        return start

    def wait(self) -> dict[str, list[dict[str, Any]]]:
        """Every publisher's, then every subscriber's report (subscribers stopped first)."""
        reports: dict[str, list[dict[str, Any]]] = {"publishers": [], "subscribers": []}
        timeout = self.plan.seconds + 120
        for name, pipe in self._pipes.items():
            if name.startswith("publisher"):
                reports["publishers"].append(self._report(name, pipe, timeout))
        for name, pipe in self._pipes.items():
            if name.startswith("subscriber"):
                pipe.send("stop")
        for name, pipe in self._pipes.items():
            if name.startswith("subscriber"):
                reports["subscribers"].append(self._report(name, pipe, timeout))
        return reports

    def stop(self) -> None:
        """End whatever is still running (only our own children)."""
        for process in self.processes.values():
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(5)

    @staticmethod
    def _report(name: str, pipe: Connection, timeout: float) -> dict[str, Any]:
        if not pipe.poll(timeout):
            raise RuntimeError(f"{name} did not report within {timeout} s")
        report: dict[str, Any] = pipe.recv()
        if "error" in report:
            raise RuntimeError(f"{name} failed: {report['error']}")
        return report
