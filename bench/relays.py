"""The two relays a step can run against, started (and stopped) by the benchmark.

- ``start_gateway``: Redis plus one ``chatrelay gateway`` process (its
  workers are never called: bench publishers stand in for them);
- ``start_bare``: Redis plus ``bare_relay.py``.

Each returns ``(url, redis_url, pids)``; ``pids`` names the relay ``relay``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from processes import Servers

from chatrelay.harness.processes import free_port
from chatrelay.harness.readiness import tcp_accepts

BARE_RELAY = Path(__file__).resolve().parent / "bare_relay.py"


def start_gateway(servers: Servers) -> tuple[str, str, dict[str, int]]:
    redis = servers.redis()
    port = free_port()
    gateway = servers.chatrelay(
        "gateway",
        port,
        {
            "REDIS_URL": redis.url,
            "AI_SERVICE_URLS": "http://127.0.0.1:9",  # never called
        },
    )
    return (
        f"ws://127.0.0.1:{port}/ws/chat",
        redis.url,
        {"relay": gateway.process.pid, "redis": redis.process.pid},
    )


def start_bare(servers: Servers) -> tuple[str, str, dict[str, int]]:
    redis = servers.redis()
    port = free_port()
    bare = servers.spawn(
        "bare-relay",
        [sys.executable, str(BARE_RELAY), "--port", str(port), "--redis", redis.url],
        f"ws://127.0.0.1:{port}",
    )
    servers.wait(bare, tcp_accepts(port), "TCP connect")
    return (
        f"ws://127.0.0.1:{port}/ws/chat",
        redis.url,
        {"relay": bare.process.pid, "redis": redis.process.pid},
    )
