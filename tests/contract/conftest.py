"""The engine fixture: every contract test runs against every engine (logs capped at 50)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chatrelay.engine import create_engine
from chatrelay.engine.base import Engine


@pytest.fixture(params=["memory", "redis"])
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[Engine]:
    url = "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")
    created = create_engine(url, max_events=50, log_ttl=300.0)
    try:
        yield created
    finally:
        await created.aclose()
