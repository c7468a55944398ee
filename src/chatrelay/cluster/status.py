"""``chatrelay cluster status``: the manifest as a table, each process alive or dead."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from chatrelay.cluster.manifest import Manifest, ProcessRecord, manifest_or_complaint, pid_alive
from chatrelay.harness.redis_cluster import info_fields


def process_state(record: ProcessRecord) -> str:
    """``alive``, ``dead``, or ``external`` for a service the launcher did not start."""
    if record.pid is None:
        return "external"
    return "alive" if pid_alive(record.pid) else "dead"


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """Plain aligned columns, as ``ps`` prints them."""
    cells = [
        [str(h) for h in headers],
        *[[("-" if c is None else str(c)) for c in row] for row in rows],
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def process_table(processes: Sequence[ProcessRecord], with_state: bool = False) -> str:
    headers = ["ROLE", "NODE", "PID", "URL", "LOG"] + (["STATE"] if with_state else [])
    rows = [
        [p.role, p.node_id, p.pid, p.url, p.log] + ([process_state(p)] if with_state else [])
        for p in processes
    ]
    return table(rows, headers)


def redis_cluster_roles(processes: Sequence[ProcessRecord]) -> str | None:
    """What each Redis Cluster node is now (a failover swaps a master and its replica),
    as one line; None without a Redis Cluster."""
    nodes = [p for p in processes if p.role == "redis" and not p.restartable and p.pid]
    if not nodes:
        return None
    by_role: dict[str, list[str]] = {"masters": [], "replicas": [], "dead": [], "not answering": []}
    for node in nodes:
        port = urlsplit(node.url).port
        if not pid_alive(node.pid) or port is None:
            by_role["dead"].append(node.node_id)
            continue
        said = info_fields(port, "INFO", "replication").get("role", "")
        by_role[{"master": "masters", "slave": "replicas"}.get(said, "not answering")].append(
            node.node_id
        )
    parts = [f"{kind} {', '.join(ids)}" for kind, ids in by_role.items() if ids]
    return "Redis Cluster now: " + "; ".join(parts)


def _phase(manifest: Manifest) -> str:
    if manifest.stopped_at is not None:
        return "stopped"
    return "ready" if manifest.ready else "starting"


def report(run_dir: Path) -> tuple[str, int]:
    """The status text for ``run_dir`` and the exit code.

    0: the launcher and every process are alive; 1: something is dead;
    2: no readable ``cluster.json`` there.
    """
    manifest = manifest_or_complaint(run_dir)
    if isinstance(manifest, str):
        return manifest, 2
    launcher = "alive" if pid_alive(manifest.launcher_pid) else "dead"
    headline = (
        f"cluster {manifest.url} (balancing {manifest.balancing}, {_phase(manifest)}), "
        f"launcher pid {manifest.launcher_pid} {launcher}, run dir {manifest.run_dir}"
    )
    lines = [headline, process_table(manifest.processes, with_state=True)]
    if (roles := redis_cluster_roles(manifest.processes)) is not None:
        lines.append(roles)
    states = [process_state(p) for p in manifest.processes]
    healthy = launcher == "alive" and "dead" not in states
    return "\n".join(lines), 0 if healthy else 1
