"""A node the launcher started: its role, where it answers, and its process."""

from __future__ import annotations

from dataclasses import dataclass

from chatrelay.cluster.manifest import ProcessRecord
from chatrelay.harness.processes import Process


@dataclass
class Child:
    """One process of the cluster: ``url`` to reach it, ``health_url`` to probe it."""

    role: str
    node_id: str
    url: str
    health_url: str | None
    process: Process
    reported_exit: bool = False
    restarts: int = 0
    # False: SIGUSR1 leaves it dead (a Redis Cluster node, cluster/redis_shards.py).
    restartable: bool = True

    @property
    def pid(self) -> int:
        return self.process.pid

    def record(self) -> ProcessRecord:
        """The line of ``cluster.json`` for this child."""
        log = str(self.process.log_path)
        return ProcessRecord(self.role, self.node_id, self.pid, self.url, log, self.restartable)

    def restarted(self) -> Child:
        """The same node started again: same command, environment, port and log (appended)."""
        return Child(
            self.role,
            self.node_id,
            self.url,
            self.health_url,
            self.process.restart(),
            restarts=self.restarts + 1,
            restartable=self.restartable,
        )
