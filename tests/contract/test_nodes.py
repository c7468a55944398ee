"""The node registry's contract (``Nodes`` of ``engine/base.py``), on every engine."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from chatrelay.engine.base import Engine
from tests.timing import seconds

SHORT_TTL = 0.3


async def mine(engine: Engine, tag: str) -> list[dict[str, Any]]:
    """The statuses this test recorded (the Redis of a run may hold others)."""
    return [s for s in await engine.nodes.statuses() if s["node_id"].startswith(tag)]


async def test_statuses_are_what_nodes_last_reported_ordered_by_kind_and_id(engine: Engine) -> None:
    tag = uuid.uuid4().hex[:8]
    await engine.nodes.report("worker", f"{tag}-w1", {"node_id": f"{tag}-w1", "running": 1}, 30)
    await engine.nodes.report("gateway", f"{tag}-g2", {"node_id": f"{tag}-g2", "sockets": 4}, 30)
    await engine.nodes.report("gateway", f"{tag}-g1", {"node_id": f"{tag}-g1", "sockets": 1}, 30)
    await engine.nodes.report("worker", f"{tag}-w1", {"node_id": f"{tag}-w1", "running": 2}, 30)

    assert await mine(engine, tag) == [
        {"node_id": f"{tag}-g1", "sockets": 1},
        {"node_id": f"{tag}-g2", "sockets": 4},
        {"node_id": f"{tag}-w1", "running": 2},
    ]


async def test_a_node_that_stops_reporting_expires_and_a_forgotten_one_is_gone(
    engine: Engine,
) -> None:
    tag = uuid.uuid4().hex[:8]
    await engine.nodes.report("worker", f"{tag}-quiet", {"node_id": f"{tag}-quiet"}, SHORT_TTL)
    await engine.nodes.report("worker", f"{tag}-live", {"node_id": f"{tag}-live"}, 30)
    await engine.nodes.report("gateway", f"{tag}-gone", {"node_id": f"{tag}-gone"}, 30)
    await engine.nodes.forget("gateway", f"{tag}-gone")
    await engine.nodes.forget("gateway", f"{tag}-gone")  # idempotent

    await asyncio.sleep(seconds(SHORT_TTL) + 0.2)

    assert await mine(engine, tag) == [{"node_id": f"{tag}-live"}]


async def test_a_gateway_and_a_worker_of_one_process_are_two_nodes(engine: Engine) -> None:
    tag = uuid.uuid4().hex[:8]
    await engine.nodes.report("gateway", f"{tag}-n", {"node_id": f"{tag}-n", "kind": "gateway"}, 30)
    await engine.nodes.report("worker", f"{tag}-n", {"node_id": f"{tag}-n", "kind": "worker"}, 30)

    assert [s["kind"] for s in await mine(engine, tag)] == ["gateway", "worker"]
