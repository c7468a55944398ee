"""The one way to run ``redis-server`` (launcher, test fixtures, bench) and to ask it a command.

No client library: one inline-protocol command over a socket is all a
health check or a test's ``FLUSHALL`` needs.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path

from chatrelay.exceptions import ProcessExited
from chatrelay.harness.processes import LOOPBACK, Command, Process, find_program, free_port, spawn
from chatrelay.harness.readiness import PROBE_TIMEOUT_SECONDS, HealthCheck, wait_ready

# Tries at a free port: another process may take it between our probe and redis's bind.
START_ATTEMPTS = 3


def redis_reply(
    port: int, *args: str, host: str = LOOPBACK, timeout: float = PROBE_TIMEOUT_SECONDS
) -> bytes:
    """Send one Redis command (inline protocol, no client library); the raw reply line(s)."""
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(" ".join(args).encode() + b"\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def redis_pong(port: int, host: str = LOOPBACK) -> HealthCheck:
    """A check: Redis on ``host:port`` answers ``PING``."""

    def check() -> bool:
        try:
            return redis_reply(port, "PING", host=host).startswith(b"+PONG")
        except OSError:
            return False

    return check


def redis_command(binary: Path, port: int, directory: Path, *extra: str) -> list[str]:
    """``redis-server`` on loopback ``port``, nothing persisted, files in ``directory``."""
    where = ["--port", str(port), "--bind", LOOPBACK, "--dir", str(directory)]
    return [str(binary), *where, "--save", "", "--appendonly", "no", *extra]


def start_redis(
    directory: Path, timeout: float, *extra: str, env: Mapping[str, str] | None = None
) -> Process:
    """Start ``redis-server`` on a free loopback port; return it once it answers PING.

    Raises :class:`MissingBinary` when it is not installed; stops what it
    started before raising :class:`ProcessExited` or :class:`ProcessNotReady`.
    """
    binary = find_program("redis-server", "redis-server")
    for attempt in range(START_ATTEMPTS):
        port = free_port()
        process = spawn(
            Command(
                redis_command(binary, port, directory, *extra),
                directory / f"redis-{port}.log",
                name="redis",
                port=port,
                env=env,
            )
        )
        try:
            wait_ready(redis_pong(port), [process], "redis PING", timeout)
            return process
        except ProcessExited:
            # Most likely another process took the port between our probe and redis's bind.
            if attempt == START_ATTEMPTS - 1:
                raise
        except BaseException:
            process.stop()
            raise
    raise AssertionError("unreachable")
