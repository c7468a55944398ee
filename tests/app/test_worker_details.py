"""Worker addresses and errors stay with operators (issue 17, finding 12)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from chatrelay.app_factory import create_gateway_app
from chatrelay.harness.processes import free_port
from tests.app.inprocess import app_settings, new_session, new_user


def refusals() -> float:
    return REGISTRY.get_sample_value("chatrelay_no_worker_total") or 0.0


@pytest.fixture
def dead_worker() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
async def gateway(tmp_path: Path, dead_worker: str) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway whose only worker is down."""
    settings = app_settings(tmp_path / "gateway.db", ai_service_urls=[dead_worker])
    app = create_gateway_app(settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gw")
        )


async def test_finding_12_a_chat_with_every_worker_down_says_nothing_internal(
    gateway: httpx.AsyncClient, dead_worker: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="chatrelay.gateway.upstream")
    user = new_user()
    refused_before = refusals()
    for _ in range(3):
        response = await gateway.post(
            "/api/chat",
            json={"session_id": new_session(), "message": "hi"},
            params={"user_id": user},
        )
        assert response.status_code == 503
        assert response.json() == {
            "code": "unavailable",
            "detail": "no worker could take the request",
        }
    summaries = [r for r in caplog.records if r.getMessage().startswith("no worker could take")]
    assert len(summaries) == 1  # rate-limited
    assert dead_worker in summaries[0].getMessage()
    assert refusals() == refused_before + 3


async def test_finding_12_health_counts_workers_without_their_addresses(
    gateway: httpx.AsyncClient, dead_worker: str
) -> None:
    await gateway.post(
        "/api/chat", json={"session_id": new_session(), "message": "hi"}, params={"user_id": "u"}
    )
    response = await gateway.get("/api/health")
    assert response.status_code == 200
    workers = response.json()["workers"]
    assert set(workers) == {"healthy", "total"} and workers["total"] == 1
    assert "127.0.0.1" not in response.text
