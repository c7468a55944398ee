"""What a node says about itself in the node registry, every couple of seconds.

Every gateway and worker runs a :class:`NodeReporter`: each
``REPORT_INTERVAL_SECONDS`` it records its status in the engine's node
registry (``engine.nodes``) with a TTL of a few intervals, so a node that
died drops out of the cluster view by itself and no node ever scrapes
another. The status is what the node kind knows (sockets, running answers,
cooled-down workers, the answers streaming now) plus what every node has:
chunks per second, a latency's p50/p99 over the last minute, errors by code,
the engine's and the store's health, and a 15-minute history of a few of
these for the charts. The numbers come from this process's Prometheus
metrics, so nothing on a hot path changes.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from chatrelay import metrics
from chatrelay.engine.base import Engine
from chatrelay.exceptions import EngineError
from chatrelay.periodic import Periodic

logger = logging.getLogger(__name__)

REPORT_INTERVAL_SECONDS = 2.0
# A node that missed this many reports in a row is gone from the view.
REPORT_TTL_SECONDS = 4 * REPORT_INTERVAL_SECONDS
# p50/p99 are over the observations of this last stretch.
QUANTILE_WINDOW_SECONDS = 60.0
# The charts: one point per step over the last 15 minutes.
HISTORY_STEP_SECONDS = 10.0
HISTORY_SECONDS = 900.0

Collect = Callable[[], Awaitable[dict[str, Any]]]


def counter_total(counter: Counter) -> float:
    """The sum of a counter over all its labels."""
    return sum(
        sample.value
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def gauge_value(gauge: Gauge) -> float:
    """An unlabelled gauge's value now."""
    return sum(sample.value for family in gauge.collect() for sample in family.samples)


def counts_by_label(counter: Counter, label: str) -> dict[str, int]:
    """A labelled counter's values by one label (``{"rate_limited": 3}``)."""
    return {
        sample.labels[label]: int(sample.value)
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total") and sample.value
    }


def histogram_buckets(histogram: Histogram) -> list[float]:
    """The cumulative bucket counts of an unlabelled histogram, ``+Inf`` last."""
    return [
        sample.value
        for family in histogram.collect()
        for sample in family.samples
        if sample.name.endswith("_bucket")
    ]


def quantile(q: float, bounds: tuple[float, ...], cumulative: list[float]) -> float | None:
    """The ``q`` quantile of bucketed observations, as Prometheus's ``histogram_quantile``.

    ``cumulative`` are counts at or under each of ``bounds`` then ``+Inf``;
    None when there is no observation. Linear within a bucket; an answer in
    the ``+Inf`` bucket is the largest finite bound.
    """
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return None
    rank = q * total
    index = bisect.bisect_left(cumulative, rank)
    if index >= len(bounds):
        return bounds[-1]
    lower = bounds[index - 1] if index > 0 else 0.0
    below = cumulative[index - 1] if index > 0 else 0.0
    inside = cumulative[index] - below
    fraction = (rank - below) / inside if inside else 1.0
    return lower + (bounds[index] - lower) * fraction


class NodeReporter:
    """Records one node's status in the node registry every couple of seconds.

    ``collect`` gives the kind's own fields (``state``, ``sockets``,
    ``running`` at least); ``chunks`` counts what the node moves (relayed on
    a gateway, published on a worker) and ``latency`` is the histogram whose
    p50/p99 it reports (chunk latency on a gateway, TTFT on a worker).
    Use it as an async context manager: it reports once on entry, then every
    interval, and forgets the node on exit.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        kind: str,
        node_id: str,
        collect: Collect,
        store_ping: Callable[[], Awaitable[bool]],
        chunks: Counter,
        latency: Histogram,
        latency_bounds: tuple[float, ...],
    ) -> None:
        self._engine = engine
        self._kind = kind
        self._node_id = node_id
        self._collect = collect
        self._store_ping = store_ping
        self._chunks = chunks
        self._latency = latency
        self._bounds = latency_bounds
        self._started_at = time.time()
        self._last_chunks = (time.monotonic(), counter_total(chunks))
        self._latency_window: deque[tuple[float, list[float]]] = deque()
        self._history: deque[list[float | None]] = deque(
            maxlen=math.ceil(HISTORY_SECONDS / HISTORY_STEP_SECONDS)
        )
        self._step_started = 0.0
        self._periodic = Periodic(REPORT_INTERVAL_SECONDS, self.report, f"node-report-{kind}")

    async def __aenter__(self) -> NodeReporter:
        await self.report()
        self._periodic.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._periodic.aclose()
        try:
            await self._engine.nodes.forget(self._kind, self._node_id)
        except EngineError as exc:
            logger.debug("could not forget node %s: %s", self._node_id, exc)

    async def status(self) -> dict[str, Any]:
        """This node's status now (what ``report`` records); advances the rates' windows."""
        now, wall = time.monotonic(), time.time()
        own = await self._collect()
        engine_ok = await self._engine.ping()
        store_ok = await self._store_ping()
        metrics.DEPENDENCY_UP.labels("engine").set(engine_ok)
        metrics.DEPENDENCY_UP.labels("store").set(store_ok)
        if own.get("state") == "up" and not (engine_ok and store_ok):
            own["state"] = "degraded"
        then, before = self._last_chunks
        total = counter_total(self._chunks)
        self._last_chunks = (now, total)
        chunks_per_s = (total - before) / (now - then) if now > then else 0.0
        p50, p99 = self._latency_quantiles(now)
        point = [
            round(wall),
            own.get("sockets", 0),
            own.get("running", 0),
            round(chunks_per_s, 2),
            p50,
            p99,
        ]
        # One point per step; the newest one follows every report until its step is over.
        if self._history and wall - self._step_started < HISTORY_STEP_SECONDS:
            self._history[-1] = point
        else:
            self._history.append(point)
            self._step_started = wall
        return {
            "kind": self._kind,
            "node_id": self._node_id,
            "started_at": self._started_at,
            "updated_at": wall,
            **own,
            "chunks_per_s": round(chunks_per_s, 2),
            "latency_p50": p50,
            "latency_p99": p99,
            "errors": counts_by_label(metrics.ERRORS, "code"),
            "engine": "up" if engine_ok else "down",
            "store": "up" if store_ok else "down",
            "history": list(self._history),
        }

    async def report(self) -> None:
        """Record the status in the engine; a failing engine is logged and skipped."""
        try:
            status = await self.status()
            await self._engine.nodes.report(self._kind, self._node_id, status, REPORT_TTL_SECONDS)
        except EngineError as exc:
            logger.warning("node report failed: %s", exc)

    def _latency_quantiles(self, now: float) -> tuple[float | None, float | None]:
        buckets = histogram_buckets(self._latency)
        self._latency_window.append((now, buckets))
        while now - self._latency_window[0][0] > QUANTILE_WINDOW_SECONDS:
            self._latency_window.popleft()
        oldest = self._latency_window[0][1]
        recent = [b - a for a, b in zip(oldest, buckets, strict=True)]
        if len(self._latency_window) == 1:
            recent = buckets  # the first report: what this process saw so far
        p50, p99 = (quantile(q, self._bounds, recent) for q in (0.5, 0.99))
        return (None if p50 is None else round(p50, 4), None if p99 is None else round(p99, 4))
