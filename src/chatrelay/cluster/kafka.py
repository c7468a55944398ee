"""``chatrelay cluster up --kafka``: a single-node Kafka broker for the event log.

The broker is ``scripts/kafka.sh start`` (Apache Kafka 4.x in KRaft mode,
fetched from Maven Central once, docs/events.md): it formats its storage
under the run folder and then ``exec``s the JVM, so the child's pid is the
broker's. Every node gets ``CHATRELAY_KAFKA_BOOTSTRAP``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chatrelay.exceptions import ClusterError
from chatrelay.harness.processes import LOOPBACK, PortPicker

# The script lives in the source checkout (cluster up runs from one).
KAFKA_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "kafka.sh"
# JVM start, storage format and KRaft election, on a loaded machine.
KAFKA_START_SECONDS = 60.0


@dataclass(frozen=True)
class KafkaPlan:
    """Where the cluster's broker listens and keeps its data."""

    port: int
    controller_port: int
    data_dir: Path

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @classmethod
    def pick(cls, run_dir: Path) -> KafkaPlan:
        ports = PortPicker()
        return cls(ports.take(), ports.take(), run_dir / "kafka")

    def command(self) -> list[str]:
        if not KAFKA_SCRIPT.is_file():
            raise ClusterError(f"{KAFKA_SCRIPT} not found: --kafka needs a source checkout")
        args = [str(self.data_dir), str(self.port), str(self.controller_port)]
        return ["bash", str(KAFKA_SCRIPT), "start", *args]
