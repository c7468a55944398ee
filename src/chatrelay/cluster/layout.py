"""Where each node of a local cluster listens and what it is told, decided before any starts.

Ports are free loopback ports picked once (a restarted node keeps its own);
every node shares one Redis, one database and one internal token.
"""

from __future__ import annotations

import enum
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from chatrelay.harness.processes import LOOPBACK, PortPicker

# Seed-style names a node reads first would override what the launcher sets.
_SHADOWING_VARIABLES = (
    "CHATRELAY_NODE_ID",
    "CHATRELAY_AI_SERVICE_URLS",
    "CHATRELAY_HOST",
    "CHATRELAY_PORT",
)
# Bytes of randomness in the internal token when the operator gives none.
TOKEN_BYTES = 24


class Database(enum.StrEnum):
    """Which database ``cluster up`` gives its nodes (``CHATRELAY_DATABASE_URL`` wins)."""

    AUTO = "auto"  # PostgreSQL when installed, else SQLite with a warning
    POSTGRES = "postgres"
    SQLITE = "sqlite"


@dataclass(frozen=True)
class Layout:
    """The ports, URLs and shared settings of one cluster's nodes."""

    run_dir: Path
    environ: Mapping[str, str]
    # None: the operator's Redis (``REDIS_URL``), which we do not start, or a Redis
    # Cluster (``--redis-shards``), whose URL is known once it has started.
    redis_port: int | None
    redis_url: str
    database_url: str
    token: str
    worker_ports: list[int] = field(default_factory=list)
    gateway_ports: list[int] = field(default_factory=list)

    @classmethod
    def plan(
        cls,
        run_dir: Path,
        workers: int,
        gateways: int,
        environ: Mapping[str, str],
        own_redis: bool = True,
    ) -> Layout:
        """Pick the ports; take Redis, the database and the token from ``environ`` if set there.

        ``own_redis`` false: no port for one redis-server (a Redis Cluster replaces it).
        """
        ports = PortPicker()
        external_redis = environ.get("REDIS_URL")
        redis_port = ports.take() if own_redis and not external_redis else None
        own_url = f"redis://{LOOPBACK}:{redis_port}/0" if redis_port else ""
        return cls(
            run_dir=run_dir,
            environ=environ,
            redis_port=redis_port,
            redis_url=external_redis or own_url,
            database_url=environ.get(
                "CHATRELAY_DATABASE_URL", f"sqlite+aiosqlite:///{run_dir / 'chatrelay.db'}"
            ),
            token=environ.get("CHATRELAY_INTERNAL_TOKEN") or secrets.token_urlsafe(TOKEN_BYTES),
            worker_ports=[ports.take() for _ in range(workers)],
            gateway_ports=[ports.take() for _ in range(gateways)],
        )

    @property
    def worker_urls(self) -> list[str]:
        return [f"http://{LOOPBACK}:{port}" for port in self.worker_ports]

    @property
    def gateway_addresses(self) -> list[str]:
        """``host:port`` of every gateway, for nginx's upstream block."""
        return [f"{LOOPBACK}:{port}" for port in self.gateway_ports]

    def node_env(self, node_id: str, **extra: str) -> dict[str, str]:
        """A node's environment: ours, less what would shadow the launcher's settings."""
        env = {k: v for k, v in self.environ.items() if k not in _SHADOWING_VARIABLES}
        env.update(
            NODE_ID=node_id,
            REDIS_URL=self.redis_url,
            CHATRELAY_DATABASE_URL=self.database_url,
            CHATRELAY_INTERNAL_TOKEN=self.token,
            PYTHONUNBUFFERED="1",
            **extra,
        )
        return env


def node_command(role: str, port: int) -> list[str]:
    """``python -m chatrelay <role>`` on loopback ``port``."""
    return [sys.executable, "-m", "chatrelay", role, "--host", LOOPBACK, "--port", str(port)]


def without_password(url: str) -> str:
    """``url`` with its password masked, for logs and ``cluster.json``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def cluster_up_command(
    run_dir: Path, port: int, gateways: int, workers: int, *options: str
) -> list[str]:
    """The command line of ``chatrelay cluster up`` (tests and bench start clusters with it)."""
    counts = ["--gateways", str(gateways), "--workers", str(workers)]
    where = ["--port", str(port), "--run-dir", str(run_dir)]
    return [sys.executable, "-m", "chatrelay", "cluster", "up", *counts, *where, *options]
