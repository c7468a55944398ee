"""The engine fixture: every contract test runs against every engine (logs capped at 50):
memory, one Redis, and a Redis Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chatrelay.engine import create_engine
from chatrelay.engine.base import Engine

# The URL fixture of each engine (None: memory). Redis Cluster: 3 masters, a replica each.
ENGINE_URLS = {"memory": None, "redis": "redis_url", "redis-cluster": "redis_cluster_url"}


@pytest.fixture(params=list(ENGINE_URLS))
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[Engine]:
    fixture = ENGINE_URLS[request.param]
    url = "memory://" if fixture is None else request.getfixturevalue(fixture)
    created = create_engine(url, max_events=50, log_ttl=300.0)
    try:
        yield created
    finally:
        await created.aclose()
