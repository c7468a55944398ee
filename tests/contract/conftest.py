"""The engine fixture: every contract test runs against every engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chatrelay.engine.base import Engine
from chatrelay.engine.memory import MemoryEngine


@pytest.fixture(params=["memory", "redis"])
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[Engine]:
    if request.param == "memory":
        created: Engine = MemoryEngine(max_events=50, log_ttl=300.0)
    elif request.param == "redis":
        from chatrelay.engine.redis import RedisEngine

        created = RedisEngine(request.getfixturevalue("redis_url"), max_events=50, log_ttl=300.0)
    else:  # pragma: no cover - guarded by params
        raise AssertionError(request.param)
    try:
        yield created
    finally:
        await created.aclose()
