#!/usr/bin/env python
"""Publishes/s through one Redis and through a 3-shard Redis Cluster, side by side.

Starts one ``redis-server`` (``redis://``) and a Redis Cluster of ``--shards``
masters with a replica each (``redis-cluster://``, chatrelay.harness's
``start_redis_cluster``), and drives both with the engine's own client
(``engine_load.py``): publisher processes call ``broker.publish`` for
``--sessions`` sessions (their ids hash to slots all over the cluster),
subscriber processes hold ``broker.subscribe`` on ``--subscribed`` of them, so
the fan-out is real. Each step offers ``rate`` publishes/s for ``--seconds``
to one target, then the same to the other (alternating, so both see the same
machine noise); a target's climb stops at its first step whose publish or
delivery p99 passes 50 ms, that loses or fails a publish, or that gets under
90% of the offered rate done.

Every redis-server's CPU is read from ``/proc/<pid>/stat`` before and after
the steady part of each step, so the result is also given per Redis CPU
second: publishes per CPU-second of the busiest master is what one shard
would carry with a core of its own. On a 2-core machine the publishers, the
subscribers and every redis-server share the same two cores, so the cluster's
absolute ceiling cannot grow with its shards here; the per-process CPU shows
how the work splits. Only 127.0.0.1; bounded steps; stops what it started, by
pid. Prints a table; writes ``bench/results/shards-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis_ceiling
import results
from engine_load import Fleet, Plan
from processes import START_TIMEOUT_SECONDS, Server, Servers, cpu_meter, raise_open_files_limit

from chatrelay.exceptions import ProcessError
from chatrelay.harness.redis import start_redis
from chatrelay.harness.redis_cluster import RedisCluster, info_fields, start_redis_cluster

# The ceiling rule: p99 at most this...
P99_LIMIT_MS = 50.0
# ...and at least this share of the offered publishes done in the step's time.
DONE_SHARE = 0.9
CLUSTER_START_TIMEOUT_SECONDS = 90.0
# Seconds between ``go`` and the first publish (everyone gets the start time).
START_DELAY_SECONDS = 0.5
MAX_STEPS = 10
# What ``--ceiling`` has publish.lua do on each target, (fan-out, check the writer): the
# engine's own first (SPUBLISH and the writer check on a cluster); on a cluster also
# without the check (its cost) and with classic PUBLISH (the broadcast's cost).
CEILING_RUNS = {
    "redis": [("PUBLISH", False)],
    "cluster": [("SPUBLISH", True), ("SPUBLISH", False), ("PUBLISH", True)],
}
CEILING_HEADERS = [
    "target",
    "fan-out",
    "writer check",
    "publishes/s",
    "masters CPU",
    "replicas CPU",
    "publishes/master CPU-s",
]


def _replica(servers: Servers, master: Server) -> Server:
    """A replica of ``master`` (as each cluster master has), once its first sync is done."""
    directory = servers.run_dir / "replica"
    directory.mkdir()
    try:
        process = start_redis(
            directory, START_TIMEOUT_SECONDS, "--replicaof", "127.0.0.1", str(master.process.port)
        )
    except ProcessError as exc:
        raise SystemExit(f"redis replica: {exc}") from exc
    replica = servers.track(Server("redis-replica", process, "", {"replica": process.pid}))
    servers.wait(
        replica,
        lambda: info_fields(process.port, "INFO", "replication").get("master_link_status") == "up",
        "master_link_status:up",
    )
    return replica


def _targets(
    args: argparse.Namespace, servers: Servers, directory: Path
) -> tuple[dict[str, tuple[str, dict[str, int]]], RedisCluster | None]:
    """Each target's engine URL and its redis-server pids by role (``master-<port>``, ...)."""
    targets: dict[str, tuple[str, dict[str, int]]] = {}
    cluster = None
    if "redis" in args.targets:
        redis = servers.redis()
        pids = {f"master-{redis.process.port}": redis.process.pid}
        if args.redis_replica:
            replica = _replica(servers, redis)
            pids[f"replica-{replica.process.port}"] = replica.process.pid
        targets["redis"] = (redis.url, pids)
    if "cluster" in args.targets:
        try:
            cluster = start_redis_cluster(
                directory / "cluster", args.shards, 1, CLUSTER_START_TIMEOUT_SECONDS
            )
        except ProcessError as exc:
            raise SystemExit(f"redis cluster: {exc} (make system-deps)") from exc
        pids = {}
        for node in cluster.nodes:
            role = "master" if node.role() == "master" else "replica"
            pids[f"{role}-{node.port}"] = node.process.pid
        targets["cluster"] = (cluster.url, pids)
    return targets, cluster


def _ceilings(targets: Mapping[str, tuple[str, dict[str, int]]]) -> list[dict[str, Any]]:
    """Each target's own ceiling with redis-benchmark, for each of its ``CEILING_RUNS``."""
    found = []
    for target, (_, pids) in targets.items():
        ports = [int(name.split("-")[1]) for name in pids if name.startswith("master")]
        for fan_out, check in CEILING_RUNS[target]:
            measured = redis_ceiling.measure(ports, pids, fan_out, check, target == "cluster")
            found.append({"target": target, **measured})
            print(results.table(CEILING_HEADERS, [_ceiling_row(found[-1])]), file=sys.stderr)
    return found


def _ceiling_row(run: dict[str, Any]) -> list[Any]:
    return [
        run["target"],
        run["fan_out"],
        "yes" if run["check_writer"] else "no",
        run["publishes_per_s"],
        run["masters_cpu_cores"],
        run["replicas_cpu_cores"],
        run["publishes_per_master_cpu_second"] or "-",
    ]


def _session_ids(target: str, rate: float, count: int) -> list[str]:
    """Fresh session ids for one step (random: they hash to slots all over the cluster)."""
    tag = f"{target[0]}{int(rate)}-{secrets.token_hex(3)}"
    return [f"bench-{tag}-{i:05d}" for i in range(count)]


def run_step(
    target: str,
    url: str,
    redis_pids: Mapping[str, int],
    rate: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One step against one target: what was offered, done and delivered, and the CPU."""
    session_ids = _session_ids(target, rate, args.sessions)
    plan = Plan(url, session_ids, rate, args.seconds, args.publishers, args.concurrency)
    subscribed = list(range(0, args.sessions, max(1, round(1 / args.subscribed))))
    fleet = Fleet(plan, subscribed, args.subscribers)
    try:
        child_pids = fleet.start()
        start = fleet.go(START_DELAY_SECONDS)
        time.sleep(max(0.0, start + 1.0 - time.time()))  # measure CPU past the start
        with cpu_meter({**redis_pids, **child_pids}) as cpu:
            time.sleep(max(0.0, args.seconds - 1.5))
        reports = fleet.wait()
    finally:
        fleet.stop()
    published = sum(r["published"] for r in reports["publishers"])
    finished = max(r["finished_at"] for r in reports["publishers"])
    done_rate = published / max(finished - start, args.seconds)
    masters = {k: v for k, v in cpu.items() if k.startswith("master")}
    replicas = {k: v for k, v in cpu.items() if k.startswith("replica")}
    masters_cpu = round(sum(masters.values()), 3)
    busiest = max(masters.values(), default=0.0)
    publishers_cpu = round(sum(v for k, v in cpu.items() if k.startswith("publisher")), 3)
    return {
        "target": target,
        "rate": rate,
        "sessions": len(session_ids),
        "subscribed_sessions": len(subscribed),
        "published": published,
        "done_per_s": round(done_rate),
        "errors": sum(r["errors"] for r in reports["publishers"]),
        "first_error": next((r["first_error"] for r in reports["publishers"] if r["errors"]), ""),
        "publish_ms": results.summarize_ms(
            v for r in reports["publishers"] for v in r["latencies"]
        ),
        "delivered": sum(r["received"] for r in reports["subscribers"]),
        "expected_deliveries": sum(r["expected"] for r in reports["subscribers"]),
        "lost": sum(r["lost"] for r in reports["subscribers"]),
        "gaps": sum(r["gaps"] for r in reports["subscribers"]),
        "delivery_ms": results.summarize_ms(
            v for r in reports["subscribers"] for v in r["latencies"]
        ),
        "masters_cpu_cores": masters_cpu,
        "busiest_master_cpu_cores": busiest,
        "replicas_cpu_cores": round(sum(replicas.values()), 3),
        "publishes_per_master_cpu_second": round(done_rate / masters_cpu) if masters_cpu else None,
        # One shard with a core of its own: this master's share of the rate over its CPU.
        "publishes_per_busiest_master_cpu_second": (
            round(done_rate / len(masters) / busiest) if busiest else None
        ),
        "publishers_cpu_cores": publishers_cpu,
        # What a worker pays to publish a chunk through the engine (Python, redis-py).
        "publishes_per_publisher_cpu_second": (
            round(done_rate / publishers_cpu) if publishers_cpu else None
        ),
        "cpu_cores": cpu,
    }


def passed(step: dict[str, Any]) -> bool:
    """Within the ceiling rule: both p99s under the limit, nothing lost or failed, rate kept."""
    return (
        step["publish_ms"]["p99"] <= P99_LIMIT_MS
        and step["delivery_ms"]["p99"] <= P99_LIMIT_MS
        and step["errors"] == 0
        and step["lost"] == 0
        and step["done_per_s"] >= DONE_SHARE * step["rate"]
    )


# The per-CPU figures of a step the summary gives at each target's ceiling.
PER_CPU = [
    "publishes_per_master_cpu_second",
    "publishes_per_busiest_master_cpu_second",
    "publishes_per_publisher_cpu_second",
]
ROW_HEADERS = [
    "target",
    "offered/s",
    "done/s",
    "publish p50",
    "publish p99",
    "delivery p50",
    "delivery p99",
    "errors",
    "lost",
    "masters CPU",
    "busiest master",
    "replicas CPU",
    "publishes/master CPU-s",
    "publishers CPU",
]


def row(step: dict[str, Any]) -> list[Any]:
    return [
        step["target"],
        int(step["rate"]),
        step["done_per_s"],
        step["publish_ms"]["p50"],
        step["publish_ms"]["p99"],
        step["delivery_ms"]["p50"],
        step["delivery_ms"]["p99"],
        step["errors"],
        step["lost"],
        step["masters_cpu_cores"],
        step["busiest_master_cpu_cores"],
        step["replicas_cpu_cores"],
        step["publishes_per_master_cpu_second"] or "-",
        step["publishers_cpu_cores"],
    ]


def summarize(done: Mapping[str, list[dict[str, Any]]], shards: int) -> dict[str, Any]:
    """Per target, at its ceiling step (its highest step within the rule): the rate and
    the per-CPU figures; then the cluster against one Redis."""
    summary: dict[str, Any] = {}
    best: dict[str, dict[str, Any]] = {}
    for target, steps in done.items():
        good = [s for s in steps if passed(s)]
        if not good:
            summary[f"{target} ceiling publishes/s"] = 0
            continue
        best[target] = top = max(good, key=lambda s: s["done_per_s"])
        summary[f"{target} ceiling publishes/s"] = top["done_per_s"]
        for figure in PER_CPU:
            summary[f"{target} {figure}".replace("_", " ")] = top[figure]
    if "redis" in best and "cluster" in best:
        one, many = best["redis"], best["cluster"]
        summary["cluster/redis ceiling"] = round(many["done_per_s"] / one["done_per_s"], 3)
        busiest = "publishes_per_busiest_master_cpu_second"
        if one[busiest] and many[busiest]:
            # What the cluster carries with a core per master, against one Redis with one core.
            summary["cluster/redis with a core per master"] = round(
                shards * many[busiest] / one[busiest], 3
            )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rates",
        default="2000,4000,6000,8000,10000,12000,16000,20000",
        help="publishes/s offered per step, comma separated (at most 10 steps)",
    )
    parser.add_argument(
        "--targets",
        default="redis,cluster",
        help="redis (one redis-server) and/or cluster (--shards masters + a replica each)",
    )
    parser.add_argument("--shards", type=int, default=3, help="cluster masters (3 to 8)")
    parser.add_argument(
        "--redis-replica",
        action="store_true",
        help="give the one Redis a replica too, as every cluster master has (replication "
        "costs a master CPU)",
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="publishing time per step")
    parser.add_argument("--sessions", type=int, default=3000, help="sessions per step")
    parser.add_argument(
        "--subscribed", type=float, default=0.25, help="share of the sessions with a subscriber"
    )
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="publishes in flight per publisher process"
    )
    parser.add_argument("--subscribers", type=int, default=1, help="subscriber processes")
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="run a step that broke the rule again this many times before the target's "
        "climb stops (a shared machine stalls now and then; every attempt is reported)",
    )
    parser.add_argument(
        "--ceiling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="first, one redis-server's own ceiling with redis-benchmark (redis_ceiling.py)",
    )
    args = parser.parse_args(argv)
    rates = [float(part) for part in args.rates.split(",") if part.strip()][:MAX_STEPS]
    names = args.targets = [part.strip() for part in args.targets.split(",") if part.strip()]
    if not rates or max(rates) > 200_000 or args.seconds > 60 or args.sessions > 50_000:
        parser.error("at most 200,000 publishes/s, 60 s a step and 50,000 sessions")
    if not names or set(names) - {"redis", "cluster"} or not 3 <= args.shards <= 8:
        parser.error(
            "--targets: redis and/or cluster; --shards: 3 (the least redis-cli makes) to 8"
        )
    if not 0 < args.subscribed <= 1 or args.concurrency < 1 or not 0 <= args.retries <= 3:
        parser.error("--subscribed in (0, 1]; --concurrency at least 1; --retries 0 to 3")
    if args.publishers < 1 or args.subscribers < 1:
        parser.error("at least one publisher and one subscriber process")
    raise_open_files_limit()
    rows: list[list[Any]] = []
    ceiling: list[dict[str, Any]] = []
    done: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="chatrelay-shards-") as tmp:
        cluster = None
        with Servers(Path(tmp)) as servers:
            try:
                targets, cluster = _targets(args, servers, Path(tmp))
                if args.ceiling:
                    ceiling = _ceilings(targets)
                stopped: set[str] = set()
                for rate in rates:
                    for name, (url, pids) in targets.items():
                        if name in stopped:
                            continue
                        for attempt in range(1 + args.retries):
                            step = run_step(name, url, pids, rate, args)
                            step["attempt"] = attempt + 1
                            done[name].append(step)
                            rows.append(row(step))
                            print(
                                results.table(ROW_HEADERS, [rows[-1]]).splitlines()[-1],
                                file=sys.stderr,
                                flush=True,
                            )
                            if passed(step):
                                break
                        else:
                            stopped.add(name)
                    if len(stopped) == len(targets):
                        break
            finally:
                if cluster is not None:
                    cluster.stop()
    if ceiling:
        print(results.table(CEILING_HEADERS, [_ceiling_row(run) for run in ceiling]))
    results.finish(
        "shards",
        ROW_HEADERS,
        rows,
        summarize(done, args.shards),
        {
            "seconds_per_step": args.seconds,
            "sessions": args.sessions,
            "subscribed": args.subscribed,
            "shards": args.shards,
            "publisher_processes": args.publishers,
            "concurrency": args.concurrency,
            "subscriber_processes": args.subscribers,
            "steps": done,
            "redis_benchmark_ceiling": ceiling,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
