"""The pure parts of bench/shards.py: who publishes where, the ceiling rule, the summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import shards
from engine_load import Plan


def _step(target: str, **changes: Any) -> dict[str, Any]:
    step: dict[str, Any] = {
        "target": target,
        "rate": 1000.0,
        "done_per_s": 1000,
        "errors": 0,
        "lost": 0,
        "publish_ms": {"p99": 10.0},
        "delivery_ms": {"p99": 12.0},
        "publishes_per_master_cpu_second": 20_000,
        "publishes_per_busiest_master_cpu_second": 20_000,
        "publishes_per_publisher_cpu_second": 8_000,
    }
    return {**step, **changes}


def test_every_publish_of_a_step_goes_to_exactly_one_session() -> None:
    plan = Plan(
        "redis://",
        [f"s{i}" for i in range(7)],
        rate=100.0,
        seconds=1.5,
        publishers=2,
        concurrency=4,
    )
    expected = [plan.expected(i) for i in range(7)]
    assert sum(expected) == plan.total == 150
    assert max(expected) - min(expected) <= 1


def test_a_step_passes_only_within_the_ceiling_rule() -> None:
    assert shards.passed(_step("redis"))
    assert not shards.passed(_step("redis", publish_ms={"p99": 50.1}))
    assert not shards.passed(_step("redis", delivery_ms={"p99": 51.0}))
    assert not shards.passed(_step("redis", lost=1))
    assert not shards.passed(_step("redis", errors=1))
    assert not shards.passed(_step("redis", done_per_s=899))


def test_the_summary_puts_the_cluster_against_one_redis_at_their_ceilings() -> None:
    done = {
        "redis": [
            _step("redis", publishes_per_busiest_master_cpu_second=18_000),
            _step("redis", rate=2000.0, done_per_s=1500),  # missed: under 90% done
        ],
        "cluster": [
            _step("cluster", rate=500.0, done_per_s=500),
            _step("cluster", done_per_s=1200, publishes_per_busiest_master_cpu_second=12_000),
        ],
    }
    summary = shards.summarize(done, shards=3)
    assert summary["redis ceiling publishes/s"] == 1000
    assert summary["redis publishes per busiest master cpu second"] == 18_000
    assert summary["cluster ceiling publishes/s"] == 1200
    assert summary["cluster/redis ceiling"] == 1.2
    assert summary["cluster/redis with a core per master"] == 2.0  # 3 x 12,000 / 18,000


def test_a_target_without_a_step_within_the_rule_has_no_ceiling() -> None:
    summary = shards.summarize({"redis": [_step("redis", lost=3)]}, shards=3)
    assert summary == {"redis ceiling publishes/s": 0}
