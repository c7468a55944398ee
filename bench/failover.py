#!/usr/bin/env python
"""Failover timing: how long after a worker's SIGKILL the next chunk of its answer arrives.

Starts ``chatrelay cluster up`` (1 gateway, 2 workers, Redis, nginx; leases of
``--lease-ttl`` s) in a temporary run folder. ``--kills`` times: one long
simulated answer is asked for, after 20 chunks the worker running it is sent
SIGKILL by pid, and the time until the answer's next chunk reaches the client
(the continuation, on the other worker) is measured; the answer must end
``completed`` with the uninterrupted text. The killed worker is started again
(SIGUSR1 to the launcher) before the next round. Prints p50/p99; writes
``bench/results/failover-<timestamp>.json``. Loopback only, bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import results
from chaos import CLUSTER_ENV, start_cluster

from chatrelay.client import ChatClient
from chatrelay.cluster.manifest import cluster_ready, pid_alive
from chatrelay.harness.readiness import wait_ready
from chatrelay.llm.simulated import LONG_ANSWER

CHUNKS_BEFORE_KILL = 20
ROUND_TIMEOUT_SECONDS = 60.0
MAX_KILLS = 100


async def _running_worker(processes: list[dict[str, object]]) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(200):
            for worker in processes:
                try:
                    health = (await http.get(f"{worker['url']}/health")).json()
                except httpx.HTTPError:
                    continue  # still starting (restarted after the last round)
                if health.get("running"):
                    return worker
            await asyncio.sleep(0.05)
    raise SystemExit("no worker runs the answer")


async def one_round(cluster: object, ws_url: str, index: int) -> dict[str, float | int]:
    # coalesce=False: chunk arrivals are indexed by seq, one frame each.
    client = ChatClient(ws_url, f"failover-{os.getpid()}-{index}", "failover-user", coalesce=False)
    await client.start(timeout=30)
    try:
        await client.chat("explain failover, step by step")
        chunks: list[float] = []  # arrival of chunk seq i + 1
        text: list[str] = []
        killed_at = 0.0
        deadline = time.monotonic() + ROUND_TIMEOUT_SECONDS
        while True:
            frame = await client.receive(timeout=max(0.01, deadline - time.monotonic()))
            if frame["type"] == "chunk":
                chunks.append(time.monotonic())
                text.append(frame["delta"])
                if len(chunks) == CHUNKS_BEFORE_KILL:
                    victim = await _running_worker(cluster.processes("worker"))  # type: ignore[attr-defined]
                    os.kill(int(victim["pid"]), signal.SIGKILL)  # type: ignore[call-overload]
                    killed_at = time.monotonic()
            elif frame["type"] == "complete":
                assert frame["status"] == "completed", frame
                assert "".join(text) == frame["content"] == LONG_ANSWER
                # The continuation's first chunk: seq resumed + 1 (chunks the dead worker
                # published before it died may still arrive after the kill).
                (resumed,) = frame["usage"]["resumed"]
                return {
                    "kill_to_next_chunk_s": round(chunks[resumed["seq"]] - killed_at, 3),
                    "continued": frame.get("usage", {}).get("continued", 0),
                    "chunks": len(chunks),
                }
    finally:
        await client.close()


def _restart_dead(cluster: object) -> None:
    cluster.launcher.signal(signal.SIGUSR1)  # type: ignore[attr-defined]
    wait_ready(
        lambda: (
            all(pid_alive(p["pid"]) for p in cluster.processes("worker"))  # type: ignore[attr-defined]
            and cluster_ready(cluster.run_dir)
        ),  # type: ignore[attr-defined]
        [],
        "the killed worker back",
        60,
    )


async def bench(kills: int, lease_ttl: float) -> dict[str, object]:
    CLUSTER_ENV["CHATRELAY_LEASE_TTL"] = str(lease_ttl)
    with tempfile.TemporaryDirectory(prefix="chatrelay-failover-") as tmp:
        cluster = start_cluster(1, 2, 0.03, Path(tmp) / "run")
        try:
            ws_url = cluster.manifest()["url"].replace("http://", "ws://", 1) + "/ws/chat"
            rounds = []
            for index in range(kills):
                rounds.append(await one_round(cluster, ws_url, index))
                _restart_dead(cluster)
                print(f"kill {index + 1}: next chunk after {rounds[-1]['kill_to_next_chunk_s']} s")
        finally:
            cluster.stop()
    gaps = sorted(r["kill_to_next_chunk_s"] for r in rounds)
    summary = {
        "kills": kills,
        "lease_ttl_s": lease_ttl,
        "p50_s": statistics.median(gaps),
        "p99_s": results.percentile(gaps, 99),
        "max_s": gaps[-1],
        "all_completed_word_for_word": True,
        "rounds": rounds,
    }
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--lease-ttl", type=float, default=3.0)
    args = parser.parse_args()
    if not 1 <= args.kills <= MAX_KILLS:
        parser.error(f"--kills must be 1..{MAX_KILLS}")
    summary = asyncio.run(bench(args.kills, args.lease_ttl))
    print(
        f"failover over {summary['kills']} kills (lease TTL {summary['lease_ttl_s']} s): "
        f"kill -> next chunk p50 {summary['p50_s']:.2f} s, p99 {summary['p99_s']:.2f} s, "
        f"max {summary['max_s']:.2f} s"
    )
    results.write("failover", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
