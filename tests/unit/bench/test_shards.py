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


def test_the_summary_puts_the_cluster_against_one_redis() -> None:
    done = {
        "redis": [_step("redis"), _step("redis", rate=2000.0, done_per_s=1500)],
        "cluster": [_step("cluster", publishes_per_busiest_master_cpu_second=15_000)],
    }
    summary = shards.summarize(done, shards=3)
    assert summary["redis"]["ceiling_publishes_per_s"] == 1000  # the 2,000/s step missed
    assert summary["ratio_ceiling"] == 1.0
    assert summary["ratio_per_busiest_master_core"] == 2.25  # 3 x 15,000 / 20,000
