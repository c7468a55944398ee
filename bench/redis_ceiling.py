"""Redis's own ceiling for chatrelay's publish, with a client that costs little.

The engine's client is Python: on a 2-core machine the publishers run out of
CPU long before a redis-server does. ``redis-benchmark`` (C) runs the
engine's ``publish.lua`` by ``EVALSHA`` instead, with the engine's arguments,
``clients`` connections, one command in flight on each (as the engine's pool
sends them: no pipelining), keys of ``sessions`` random sessions; every
redis-server's CPU over the run says how close to a full core each got.

Against a cluster, ``redis-benchmark --cluster`` sends each node commands
whose ``{tag}`` it replaced with a hash tag of that node's slots, so a call's
keys share a slot as a session's do. Each ``__rand_int__`` is drawn on its
own, so one call's meta, log and channel may belong to different sessions:
the same work per call, not a consistent log (these servers are thrown away).
Nobody subscribes: this is the append and the publish without delivery (the
engine steps of ``shards.py`` measure delivery), but a classic ``PUBLISH`` in
a cluster is still sent to every node over the cluster bus, subscribers or not.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from processes import cpu_seconds

from chatrelay.engine.redis_client import script_sources
from chatrelay.harness.processes import find_program

FRAME = '{"type":"chunk","message_id":"m-bench","seq":1,"delta":"word ","ts":1.5}'
LOG_MAX_EVENTS, LOG_TTL_MS, OFFSET_TTL_MS = "1000", "300000", "604800000"
RUN_TIMEOUT_SECONDS = 120.0


def _load(ports: Sequence[int]) -> str:
    """Load the engine's ``publish.lua`` (its includes resolved) on every node; its SHA1."""
    text = script_sources()["publish"]
    sha = ""
    for port in ports:
        with redis.Redis(host="127.0.0.1", port=port) as client:
            sha = client.script_load(text)
    return sha


def measure(
    ports: Sequence[int],
    pids: Mapping[str, int],
    fan_out: str = "PUBLISH",
    check_writer: bool = False,
    cluster: bool = False,
    requests: int = 150_000,
    clients: int = 50,
    sessions: int = 3000,
) -> dict[str, Any]:
    """``requests`` publishes as fast as ``redis-benchmark`` gets them done.

    ``ports``: every master (the script is loaded on each; the first is where
    redis-benchmark starts); ``pids``: every redis-server by name
    (``master-<port>``, ``replica-<port>``), whose CPU is read before and after.
    """
    benchmark = find_program("redis-benchmark", "redis-tools")
    sha = _load(ports)
    tag = "{tag}:__rand_int__" if cluster else "{__rand_int__}"
    command = [
        str(benchmark),
        *(["--cluster"] if cluster else []),
        *("-h", "127.0.0.1", "-p", str(ports[0]), "-q"),
        *("-n", str(requests), "-c", str(clients), "-P", "1", "-r", str(sessions)),
        *("EVALSHA", sha, "3", f"chat:meta:{tag}", f"chat:log:{tag}", f"chat:stream:{tag}"),
        *(FRAME, "benchepoch", LOG_MAX_EVENTS, LOG_TTL_MS, OFFSET_TTL_MS, ""),
        # The engine checks the meta's writer on a cluster (_epoch.lua), not on one Redis.
        *("1" if check_writer else "0", fan_out),
    ]
    before, started = {name: cpu_seconds(pid) for name, pid in pids.items()}, time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=True
    )
    elapsed = time.monotonic() - started
    cpu = {
        name: round((cpu_seconds(pid) - before[name]) / elapsed, 3) for name, pid in pids.items()
    }
    # -q prints progress lines ending in \r, then "...: 44260.84 requests per second, p50=...".
    found = re.findall(r"([\d.]+) requests per second", done.stdout)
    rate = float(found[-1]) if found else requests / elapsed
    masters = [v for k, v in cpu.items() if k.startswith("master")]
    return {
        "fan_out": fan_out,
        "check_writer": check_writer,
        "requests": requests,
        "clients": clients,
        "publishes_per_s": round(rate),
        "masters_cpu_cores": round(sum(masters), 3),
        "replicas_cpu_cores": round(sum(v for k, v in cpu.items() if k.startswith("replica")), 3),
        "publishes_per_master_cpu_second": round(rate / sum(masters)) if sum(masters) else None,
        "cpu_cores": cpu,
    }
