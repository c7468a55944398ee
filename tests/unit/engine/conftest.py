"""Fixtures of the Redis engine's unit tests: an engine on a real ``redis-server``, an admin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from chatrelay.engine import create_engine
from chatrelay.engine.base import Engine
from chatrelay.engine.broker_redis import RedisBroker
from chatrelay.engine.subscription import QueueSubscription
from chatrelay.harness.processes import free_port
from tests.timing import seconds, wait_until


@pytest.fixture
async def engine(redis_url: str) -> AsyncIterator[Engine]:
    created = create_engine(redis_url, max_events=50, log_ttl=300.0, node_id="test")
    try:
        yield created
    finally:
        await created.aclose()


@pytest.fixture
def closed_redis_url() -> str:
    """A Redis URL on a loopback port where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def frame(n: int) -> dict[str, object]:
    return {"type": "chunk", "message_id": "m1", "seq": n, "delta": f"w{n} "}


def redis_broker(engine: Engine) -> RedisBroker:
    """The engine's broker, which a Redis engine's is."""
    assert isinstance(engine.broker, RedisBroker)
    return engine.broker


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float | None = None) -> None:
    """Poll ``check`` until it holds, or fail after ``timeout`` (default: 5 units)."""
    await wait_until(check, "the condition", timeout or seconds(5))


async def next_event_offset(subscription: QueueSubscription) -> int:
    async with asyncio.timeout(seconds(5)):
        return (await anext(aiter(subscription))).offset
