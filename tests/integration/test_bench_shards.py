"""bench/shards.py keeps working: one small step through one Redis and a Redis Cluster.

Not a speed test (nothing here looks at a latency or a rate): the bench's own
accounting must show every publish made and every subscribed one delivered in
order, on both targets, with every redis-server's CPU read. It starts its own
redis-server and cluster and stops them by pid.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.timing import seconds

BENCH = Path(__file__).resolve().parents[2] / "bench"
RATE, STEP_SECONDS, SESSIONS = 300, 2, 60


def test_one_step_through_redis_and_a_cluster_delivers_everything() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "shards.py",
            *("--targets", "redis,cluster", "--rates", str(RATE)),
            *("--seconds", str(STEP_SECONDS), "--sessions", str(SESSIONS), "--no-ceiling"),
        ],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=seconds(180),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    path = Path(done.stderr.rsplit("wrote ", 1)[1].strip())
    try:
        run = json.loads(path.read_text())
    finally:
        path.unlink()
    assert set(run["steps"]) == {"redis", "cluster"}
    for target, (step,) in run["steps"].items():
        assert step["published"] == RATE * STEP_SECONDS, target
        assert step["errors"] == 0, step["first_error"]
        assert step["expected_deliveries"] > 0
        assert step["delivered"] == step["expected_deliveries"], target
        assert (step["lost"], step["gaps"]) == (0, 0), target
    masters = [
        name for name in run["steps"]["cluster"][0]["cpu_cores"] if name.startswith("master")
    ]
    replicas = [n for n in run["steps"]["cluster"][0]["cpu_cores"] if n.startswith("replica")]
    assert (len(masters), len(replicas)) == (3, 3)
