"""The servers a benchmark starts, and only those: started here, stopped here, by pid.

Also what a benchmark reads about a process while it runs (resident memory,
CPU seconds, from ``/proc``), the open-file limit raised for itself and its
children, and the loopback source addresses its clients spread over.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# A started server must answer its health check within this time.
START_TIMEOUT_SECONDS = 60.0
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@dataclass
class Server:
    """One process this benchmark started; ``pids`` names what it is made of, by role."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    pids: dict[str, int] = field(default_factory=dict)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM our process (a cluster launcher stops its own children), SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


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

    def spawn(self, name: str, args: list[str], url: str, env: Mapping[str, str] | None = None,
              ) -> Server:
        log_path = self.run_dir / f"{name}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.run_dir, env={**os.environ, **(env or {})},
        )
        server = Server(name, process, url, log_path, {name: process.pid})
        self.started.append(server)
        return server

    def redis(self) -> Server:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (make system-deps)")
        port = free_port()
        server = self.spawn("redis", [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--maxclients", "20000",
        ], f"redis://127.0.0.1:{port}/0")
        _wait(lambda: _redis_answers(port), server, "redis PING")
        return server

    def chatrelay(self, role: str, port: int, env: Mapping[str, str], name: str | None = None,
                  ) -> Server:
        """``python -m chatrelay <role>`` on 127.0.0.1:port, ready when /health answers 200."""
        name = name or role
        environment = {**LOAD_ENVIRONMENT, "NODE_ID": name,
                       "CHATRELAY_DATABASE_URL":
                           f"sqlite+aiosqlite:///{self.run_dir / (name + '.db')}",
                       **env}
        server = self.spawn(name, [sys.executable, "-m", "chatrelay", role,
                                   "--host", "127.0.0.1", "--port", str(port)],
                            f"http://127.0.0.1:{port}", environment)
        _wait_healthy(server, f"http://127.0.0.1:{port}/health")
        return server

    def cluster(self, gateways: int, workers: int, port: int, env: Mapping[str, str]) -> Server:
        """``chatrelay cluster up``: nginx in front of gateways and workers, with Redis."""
        run_dir = self.run_dir / "cluster"
        environment = {**LOAD_ENVIRONMENT, "CHATRELAY_LOG_FORMAT": "json", **env}
        server = self.spawn("cluster", [
            sys.executable, "-m", "chatrelay", "cluster", "up", "--gateways", str(gateways),
            "--workers", str(workers), "--port", str(port), "--run-dir", str(run_dir),
            "--grace", "4",
        ], f"http://127.0.0.1:{port}", environment)
        manifest = run_dir / "cluster.json"

        def ready() -> bool:
            try:
                return bool(json.loads(manifest.read_text()).get("ready"))
            except (OSError, ValueError):
                return False

        _wait(ready, server, "cluster.json ready", timeout=120)
        for record in json.loads(manifest.read_text())["processes"]:
            if record.get("pid"):
                server.pids[record["node_id"]] = record["pid"]
        return server


def _wait(ready: object, server: Server, what: str, timeout: float = START_TIMEOUT_SECONDS,
          ) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited while starting; see {server.log_path}:\n"
                             + server.log_path.read_text()[-2000:])
        if time.monotonic() > deadline:
            raise SystemExit(f"{server.name}: no {what} within {timeout:.0f} s")
        time.sleep(0.1)


def _wait_healthy(server: Server, url: str) -> None:
    def ready() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    _wait(ready, server, f"200 from {url}")


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


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
