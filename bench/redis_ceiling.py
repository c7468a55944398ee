"""One redis-server's own ceiling for chatrelay's publish, with a client that costs little.

The engine's client is Python: on a 2-core machine the publishers run out of
CPU long before one redis-server does. ``redis-benchmark`` (C) runs
``publish.lua`` by ``EVALSHA`` instead, ``clients`` connections, one command
in flight on each (as the engine's pool sends them: no pipelining), keys of
``sessions`` random sessions; the redis-server's CPU over the run says how
close to one full core it got. Each ``__rand_int__`` is drawn on its own, so
one call's meta, log and channel may belong to different sessions: the same
work per call, not a consistent log (this Redis is thrown away). Nobody
subscribes, so this is the append and the PUBLISH without delivery; the
engine steps of ``shards.py`` measure delivery too.
"""

from __future__ import annotations

import re
import subprocess
import time
from importlib import resources
from typing import Any

import redis
from processes import cpu_seconds

from chatrelay.harness.processes import find_program

FRAME = '{"type":"chunk","message_id":"m-bench","seq":1,"delta":"word ","ts":1.5}'
LOG_MAX_EVENTS, LOG_TTL_MS, OFFSET_TTL_MS = "1000", "300000", "604800000"
RUN_TIMEOUT_SECONDS = 120.0


def measure(
    port: int, pid: int, requests: int = 150_000, clients: int = 50, sessions: int = 3000
) -> dict[str, Any]:
    """``requests`` publishes as fast as ``redis-benchmark`` gets them done; rate and CPU."""
    benchmark = find_program("redis-benchmark", "redis-tools")
    script = resources.files("chatrelay.engine").joinpath("redis_scripts/publish.lua").read_text()
    with redis.Redis(host="127.0.0.1", port=port) as client:
        sha = client.script_load(script)
    command = [
        str(benchmark),
        *("-h", "127.0.0.1", "-p", str(port), "-q"),
        *("-n", str(requests), "-c", str(clients), "-P", "1", "-r", str(sessions)),
        *("EVALSHA", sha, "3"),
        *("chat:meta:{__rand_int__}", "chat:log:{__rand_int__}", "chat:stream:{__rand_int__}"),
        *(FRAME, "benchepoch", LOG_MAX_EVENTS, LOG_TTL_MS, OFFSET_TTL_MS, ""),
    ]
    cpu_before, started = cpu_seconds(pid), time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=True
    )
    elapsed = time.monotonic() - started
    redis_cpu = (cpu_seconds(pid) - cpu_before) / elapsed
    # -q prints progress lines ending in \r, then "...: 44260.84 requests per second, p50=...".
    found = re.findall(r"([\d.]+) requests per second(?:, p50=([\d.]+) msec)?", done.stdout)
    rate = float(found[-1][0]) if found else requests / elapsed
    p50 = float(found[-1][1]) if found and found[-1][1] else None
    return {
        "requests": requests,
        "clients": clients,
        "publishes_per_s": round(rate),
        "p50_ms": p50,
        "redis_cpu_cores": round(redis_cpu, 3),
        "publishes_per_redis_cpu_second": round(rate / redis_cpu) if redis_cpu else None,
    }
