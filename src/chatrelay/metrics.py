"""Prometheus metrics of gateways and workers, served at ``/metrics``.

Names start with ``chatrelay_``. Everything a hot path touches is a plain
counter increment or a histogram observation: no labels computed per chunk
beyond constants, no logging.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

# Publish-to-send latency spans from sub-millisecond to seconds under overload.
# fmt: off
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
)
# fmt: on
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

OPEN_SOCKETS = Gauge("chatrelay_open_sockets", "WebSockets open on this gateway")
RELAYED_SESSIONS = Gauge(
    "chatrelay_relayed_sessions", "Sessions this gateway holds an engine subscription for"
)
CHUNKS_RELAYED = Counter("chatrelay_chunks_relayed_total", "Log events written to sockets")
CHUNK_LATENCY = Histogram(
    "chatrelay_chunk_latency_seconds",
    "From a chunk's publish on a worker to its send on a gateway socket",
    buckets=LATENCY_BUCKETS,
)
RESUMES = Counter("chatrelay_resumes_total", "resume frames answered", ["outcome"])
LOG_RESETS = Counter(
    "chatrelay_log_resets_total", "Sessions whose sockets were told to reset (the log lost events)"
)
GAP_REPAIRS = Counter("chatrelay_gap_repairs_total", "Holes in live delivery filled from the log")
SEND_QUEUE_DROPS = Counter(
    "chatrelay_send_queue_drops_total", "Sockets closed because their send queue filled"
)
ENGINE_ERRORS = Counter("chatrelay_engine_errors_total", "Engine calls that failed", ["where"])
UPSTREAM_CALLS = Counter(
    "chatrelay_upstream_calls_total", "Gateway calls to workers", ["node", "outcome"]
)
NO_WORKER = Counter("chatrelay_no_worker_total", "Chats refused: no worker could take them")
GENERATIONS = Counter("chatrelay_generations_total", "Finished generations", ["status"])
TIME_TO_FIRST_TOKEN = Histogram(
    "chatrelay_time_to_first_token_seconds",
    "From a generation's start to the model's first delta",
    buckets=TTFT_BUCKETS,
)
CHUNKS_PUBLISHED = Counter("chatrelay_chunks_published_total", "Answer chunks a worker published")
ERRORS = Counter("chatrelay_errors_total", "Errors answered to clients (frames and REST)", ["code"])
DEPENDENCY_UP = Gauge(
    "chatrelay_dependency_up",
    "1 when the node reaches it (engine, store), as last reported",
    ["dependency"],
)
RUNNING_GENERATIONS = Gauge("chatrelay_running_generations", "Generations running on this worker")
# The event log (docs/events.md): every node reads the backlog; the relay counts.
EVENT_OUTBOX_BACKLOG = Gauge(
    "chatrelay_event_outbox_backlog", "Outbox events not yet acknowledged by Kafka"
)
EVENTS_RELAYED = Counter("chatrelay_events_relayed_total", "Outbox events acknowledged by Kafka")
EVENTS_DEAD_LETTERED = Counter(
    "chatrelay_events_dead_lettered_total", "Outbox events refused for good, moved aside"
)


def observe_send(ts: float | None) -> None:
    """Count one event written to a socket, and its latency if it carries a publish time.

    ``ts`` is None for an event that was not live (replayed by a resume or
    repaired from the log): its age says nothing about the relay's latency.
    """
    CHUNKS_RELAYED.inc()
    if ts:
        CHUNK_LATENCY.observe(time.time() - ts)


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
