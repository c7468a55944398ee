"""``cluster.json``: what a running local cluster is made of, for people and for tests.

Written by the launcher into its run folder as processes start (``ready``
turns true once every one answers), read by ``chatrelay cluster status``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FILE_NAME = "cluster.json"


@dataclass
class ProcessRecord:
    """One process of the cluster. ``pid`` is None for a service we did not start."""

    role: str  # "redis", "postgres", "kafka", "worker", "gateway" or "nginx"
    node_id: str
    pid: int | None
    url: str
    log: str | None = None
    # False: SIGUSR1 to the launcher does not start it again (a Redis Cluster node).
    restartable: bool = True


@dataclass
class Manifest:
    """The whole cluster: where to reach it and every process in it."""

    url: str
    run_dir: str
    balancing: str
    launcher_pid: int
    started_at: float
    ready: bool = False
    stopped_at: float | None = None
    processes: list[ProcessRecord] = field(default_factory=list)

    def write(self, run_dir: Path) -> Path:
        """Write ``cluster.json`` atomically (a reader never sees half a file)."""
        path = run_dir / FILE_NAME
        scratch = path.with_suffix(".json.tmp")
        scratch.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(scratch, path)
        return path

    @classmethod
    def read(cls, run_dir: Path) -> Manifest:
        """The manifest in ``run_dir``; raises ``FileNotFoundError`` or ``ValueError``."""
        data: dict[str, Any] = json.loads((run_dir / FILE_NAME).read_text())
        processes = [ProcessRecord(**record) for record in data.pop("processes", [])]
        return cls(**data, processes=processes)


def manifest_or_complaint(run_dir: Path) -> Manifest | str:
    """The manifest in ``run_dir``, or why there is none to read (``cluster status``/``down``)."""
    try:
        return Manifest.read(run_dir)
    except FileNotFoundError:
        return f"no cluster.json in {run_dir}: is a cluster running from there?"
    except (ValueError, TypeError) as exc:
        return f"unreadable cluster.json in {run_dir}: {exc}"


def pid_alive(pid: int | None) -> bool:
    """Whether a process with ``pid`` exists and is not a zombie."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        # The state letter follows the command name in parentheses.
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def cluster_ready(run_dir: Path) -> bool:
    """Whether the ``cluster.json`` in ``run_dir`` says every process answers (a health check)."""
    try:
        return Manifest.read(run_dir).ready
    except (OSError, ValueError, TypeError):
        return False
