"""One load step against one relay: N listening sessions, publishers at R chunks/s each.

Shared by ``fanout.py`` (a chatrelay gateway is the relay) and ``baseline.py``
(the bare relay): same clients, same frames, same clock, so the two can be
put side by side. A step connects fresh sessions, publishes for ``seconds``,
ends every session's message with ``complete``, and reports what the
sessions saw plus the CPU each process used while the chunks flowed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import profiles
import results
from processes import cpu_meter
from publishers import Publishers
from sessions import ClientFleet, LoadPlan, session_specs

from chatrelay.store.conversations import ConversationStore

# A step stops the climb when its p99 passes this (the ceiling rule)...
P99_LIMIT_MS = 50.0
# ...or when less than this share of the offered chunks arrived in time.
DELIVERED_SHARE = 0.9


async def _claim(database_url: str, sessions: Sequence[tuple[str, str]]) -> None:
    """Store each session as its user's, as its first chat would."""
    async with ConversationStore(database_url) as store:
        for session_id, user_id in sessions:
            await store.claim_session(session_id, user_id)


def run_step(
    relay: str,
    url: str,
    kind: str,
    redis_url: str,
    sessions: int,
    rate: float,
    seconds: float,
    clients: int,
    publishers: int,
    pids: Mapping[str, int],
    profile: Path | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """One step; ``relay`` names the process under test (a key of ``pids``).

    ``database_url``: chatrelay's store, where each session is claimed by its user
    before the sockets open (a gateway holds a socket's events until its session is
    someone's, and the publishers here stand in for workers, which would claim it).
    """
    specs = session_specs(sessions, kind[:2], True)
    if database_url is not None:
        asyncio.run(_claim(database_url, [(s.session_id or "", s.user_id) for s in specs]))
    plan = LoadPlan(
        url=url,
        sessions=specs,
        processes=clients,
        chat_text=None,
        turns=1,
        ramp_seconds=0.0,
        run_seconds=seconds,
    )
    with ClientFleet(plan) as fleet:
        connected = fleet.connect()
        publisher = Publishers(
            kind, redis_url, [s.session_id or "" for s in specs], rate, seconds, publishers
        )
        go_at = fleet.go(0.5)
        publisher_pids = publisher.start(go_at)
        meter = {
            **pids,
            **{f"publisher-{i}": p for i, p in enumerate(publisher_pids)},
            **{f"client-{i}": p.pid for i, p in enumerate(fleet._processes) if p.pid},
        }
        time.sleep(max(0.0, go_at + 1.0 - time.time()))  # measure CPU past the start
        sampler = profiles.record(pids[relay], seconds - 2.0, profile) if profile else None
        with cpu_meter(meter) as cpu:
            time.sleep(max(0.0, seconds - 1.5))
        if sampler is not None:
            sampler.wait(30)
        published = publisher.wait()
        totals = fleet.wait()
    offered = connected * rate
    delivered = totals.steady_rate(go_at + 1.0, go_at + seconds - 0.5)
    latency = results.summarize_ms(totals.latencies)
    relay_cpu = cpu.get(relay, 0.0)
    return {
        "sessions": sessions,
        "connected": connected,
        "rate": rate,
        "offered_chunks_per_s": offered,
        "delivered_chunks_per_s": round(delivered),
        "chunks": totals.chunks,
        "published": published["published"],
        "publisher_max_behind_s": published["max_behind_s"],
        "lost": totals.lost,
        "duplicated": totals.duplicated,
        "seq_errors": totals.seq_errors,
        "mismatched": totals.mismatched,
        "unfinished": totals.unfinished,
        "closed_early": totals.closed_early,
        "connect_failed": totals.connect_failed,
        "latency_ms": latency,
        "relay_cpu_cores": relay_cpu,
        "chunks_per_relay_cpu_second": round(delivered / relay_cpu) if relay_cpu else None,
        "cpu_cores": cpu,
    }


def passed(step: dict[str, Any]) -> bool:
    """Within the ceiling rule: p99 under the limit, (nearly) all offered chunks delivered."""
    return (
        step["latency_ms"]["p99"] <= P99_LIMIT_MS
        and step["lost"] == 0
        and step["delivered_chunks_per_s"] >= DELIVERED_SHARE * step["offered_chunks_per_s"]
    )


ROW_HEADERS = [
    "relay",
    "sessions",
    "offered/s",
    "delivered/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "lost",
    "dup",
    "relay CPU",
    "chunks/CPU-s",
    "publisher behind s",
]


def row(name: str, step: dict[str, Any]) -> list[Any]:
    lat = step["latency_ms"]
    return [
        name,
        step["sessions"],
        step["offered_chunks_per_s"],
        step["delivered_chunks_per_s"],
        lat["p50"],
        lat["p90"],
        lat["p99"],
        lat["max"],
        step["lost"],
        step["duplicated"],
        step["relay_cpu_cores"],
        step["chunks_per_relay_cpu_second"] or "-",
        step["publisher_max_behind_s"],
    ]
