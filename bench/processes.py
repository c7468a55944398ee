"""The servers a benchmark starts, and only those: started here (``chatrelay.harness``),
stopped here, by pid.

Also what a benchmark reads about a process while it runs (resident memory,
CPU seconds, from ``/proc``), the open-file limit raised for itself and its
children, and the loopback source addresses its clients spread over.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chatrelay.cluster.layout import cluster_up_command
from chatrelay.cluster.manifest import cluster_ready
from chatrelay.exceptions import ProcessError
from chatrelay.harness.processes import Command, Process, spawn
from chatrelay.harness.readiness import HealthCheck, http_ok, wait_ready
from chatrelay.harness.redis import start_redis

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# A started server must answer its health check within this time.
START_TIMEOUT_SECONDS = 60.0
# A whole cluster (redis, nodes, nginx) must be ready within this time.
CLUSTER_START_TIMEOUT_SECONDS = 120.0
# SIGTERM, then SIGKILL after this long.
STOP_GRACE_SECONDS = 8.0
# Loopback /24s the clients spread over: nginx ip_hash hashes the first three
# octets of an IPv4 address, so the third octet is what spreads the load.
LOOPBACK_SUBNETS = 250
# Environment for chatrelay servers under load: the simulated model, limits
# that a benchmark's thousands of chats and sockets would otherwise trip.
LOAD_ENVIRONMENT = {
    "CHATRELAY_MODEL": "simulated",
    "CHATRELAY_CHAT_RATE_BURST": "1000000",
    "CHATRELAY_CHAT_RATE_PER_SECOND": "1000000",
    "CHATRELAY_MAX_CONNECTIONS_PER_USER": "1000000",
    # A process serves 2,048 connections by default; the benches hold up to 19,000.
    "CHATRELAY_MAX_CONCURRENCY": "100000",
    "CHATRELAY_LISTEN_BACKLOG": "8192",
    "CHATRELAY_DRAIN_GRACE_SECONDS": "2",
    "CHATRELAY_LOG_LEVEL": "warning",
}


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def loopback_address(index: int) -> str:
    """The ``index``-th client source address: 127.0.x.y, x varying fastest (see above)."""
    x = index % LOOPBACK_SUBNETS + 1
    y = index // LOOPBACK_SUBNETS % 250 + 1
    return f"127.0.{x}.{y}"


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far (0.0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def family_cpu_seconds(parent: int) -> float:
    """CPU seconds of ``parent`` and its direct children (PostgreSQL's backends)."""
    total = cpu_seconds(parent)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                total += cpu_seconds(int(stat.parent.name))
    return total


@dataclass
class Server:
    """One process this benchmark started; ``pids`` names what it is made of, by role."""

    name: str
    process: Process
    url: str
    pids: dict[str, int] = field(default_factory=dict)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM our process (a cluster launcher stops its children), SIGKILL if it lingers."""
        self.process.stop(grace)


class Servers:
    """Everything a benchmark started, stopped in reverse order however the run ends."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.started: list[Server] = []

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for server in reversed(self.started):
            with contextlib.suppress(Exception):
                server.stop()

    def spawn(
        self,
        name: str,
        args: list[str],
        url: str,
        env: Mapping[str, str] | None = None,
    ) -> Server:
        """Start ``args`` (our environment plus ``env``), logging to ``<run_dir>/<name>.log``."""
        process = spawn(
            Command(
                args,
                self.run_dir / f"{name}.log",
                name=name,
                cwd=self.run_dir,
                env={**os.environ, **(env or {})},
            )
        )
        return self.track(Server(name, process, url, {name: process.pid}))

    def wait(
        self, server: Server, check: HealthCheck, what: str, timeout: float = START_TIMEOUT_SECONDS
    ) -> None:
        """Until ``check`` passes; exits the benchmark with the log's tail if it does not."""
        try:
            wait_ready(check, [server.process], what, timeout)
        except ProcessError as exc:
            raise SystemExit(f"{server.name}: {exc}") from exc

    def redis(self) -> Server:
        """``redis-server`` on a free port, allowing a benchmark's thousands of clients."""
        try:
            process = start_redis(self.run_dir, START_TIMEOUT_SECONDS, "--maxclients", "20000")
        except ProcessError as exc:
            raise SystemExit(f"redis: {exc} (make system-deps)") from exc
        url = f"redis://127.0.0.1:{process.port}/0"
        return self.track(Server("redis", process, url, {"redis": process.pid}))

    def chatrelay(
        self,
        role: str,
        port: int,
        env: Mapping[str, str],
        name: str | None = None,
    ) -> Server:
        """``python -m chatrelay <role>`` on 127.0.0.1:port, ready when /health answers 200."""
        name = name or role
        environment = {
            **LOAD_ENVIRONMENT,
            "NODE_ID": name,
            "CHATRELAY_DATABASE_URL": f"sqlite+aiosqlite:///{self.run_dir / (name + '.db')}",
            **env,
        }
        server = self.spawn(
            name,
            [sys.executable, "-m", "chatrelay", role, "--host", "127.0.0.1", "--port", str(port)],
            f"http://127.0.0.1:{port}",
            environment,
        )
        self.wait(server, http_ok(f"{server.url}/health"), "GET /health")
        return server

    def cluster(
        self, gateways: int, workers: int, port: int, env: Mapping[str, str], *options: str
    ) -> Server:
        """``chatrelay cluster up`` (plus ``options``): nginx in front of gateways and
        workers, with Redis."""
        run_dir = self.run_dir / "cluster"
        environment = {**LOAD_ENVIRONMENT, "CHATRELAY_LOG_FORMAT": "json", **env}
        command = cluster_up_command(run_dir, port, gateways, workers, "--grace", "4", *options)
        server = self.spawn("cluster", command, f"http://127.0.0.1:{port}", environment)
        self.wait(
            server,
            lambda: cluster_ready(run_dir),
            "cluster.json ready",
            timeout=CLUSTER_START_TIMEOUT_SECONDS,
        )
        manifest = run_dir / "cluster.json"
        for record in json.loads(manifest.read_text())["processes"]:
            if record.get("pid"):
                server.pids[record["node_id"]] = record["pid"]
        return server

    def track(self, server: Server) -> Server:
        """Stop ``server`` (started elsewhere) with everything else."""
        self.started.append(server)
        return server


@contextlib.contextmanager
def cpu_meter(pids: Mapping[str, int]) -> Iterator[dict[str, float]]:
    """CPU use of each named pid over the ``with`` block, as a fraction of one core."""
    result: dict[str, float] = {}
    start = time.monotonic()
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    try:
        yield result
    finally:
        elapsed = max(time.monotonic() - start, 1e-9)
        for name, pid in pids.items():
            result[name] = round((cpu_seconds(pid) - before[name]) / elapsed, 3)
