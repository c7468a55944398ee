"""The worker's HTTP API in-process: it trusts no caller (issue 17, findings 1 and 11)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatrelay.app_factory import create_worker_app
from chatrelay.rest import INTERNAL_TOKEN_HEADER
from tests.app.inprocess import app_settings, new_session, new_user

TOKEN = "the-expected-internal-token-4f2a"


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A worker app (simulated model, memory engine) and an HTTP client without the token."""
    settings = app_settings(tmp_path / "worker.db", internal_token=TOKEN)
    app = create_worker_app(settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        yield await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://worker")
        )


def chat_body(**overrides: Any) -> dict[str, Any]:
    return {"session_id": new_session(), "user_id": new_user(), "message": "hi", **overrides}


async def test_finding_1_non_ascii_internal_token_is_401_and_leaks_nothing(
    worker: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await worker.post(
        "/chat", json=chat_body(), headers={INTERNAL_TOKEN_HEADER: "jeton-é-ünïcode".encode()}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert set(response.json()) == {"code", "detail"}
    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''} {record.__dict__}"
        for record in caplog.records
    )
    assert TOKEN not in logged
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_finding_1_wrong_and_missing_tokens_are_401(worker: httpx.AsyncClient) -> None:
    wrong = await worker.post("/chat", json=chat_body(), headers={INTERNAL_TOKEN_HEADER: "nope"})
    missing = await worker.post("/chat", json=chat_body())
    right = await worker.post("/chat", json=chat_body(), headers={INTERNAL_TOKEN_HEADER: TOKEN})
    assert wrong.status_code == missing.status_code == 401
    assert right.status_code == 202, right.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user_id", "x\ny z<script>"),
        ("user_id", ""),
        ("message_id", "m\n1"),
        ("user_message_id", "u" * 129),
        ("session_id", "s/1"),
    ],
)
async def test_finding_11_worker_refuses_ids_the_gateway_would(
    worker: httpx.AsyncClient, field: str, value: str
) -> None:
    response = await worker.post(
        "/chat", json=chat_body(**{field: value}), headers={INTERNAL_TOKEN_HEADER: TOKEN}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_message"


async def test_finding_11_worker_refuses_a_message_over_the_character_limit(
    worker: httpx.AsyncClient,
) -> None:
    too_long = await worker.post(
        "/chat", json=chat_body(message="a" * 16_001), headers={INTERNAL_TOKEN_HEADER: TOKEN}
    )
    at_limit = await worker.post(
        "/chat", json=chat_body(message="a" * 16_000), headers={INTERNAL_TOKEN_HEADER: TOKEN}
    )
    assert too_long.status_code == 422, too_long.text
    assert "16000 characters" in too_long.json()["detail"]
    assert at_limit.status_code == 202, at_limit.text


async def test_finding_2_worker_refuses_a_huge_body_with_413(worker: httpx.AsyncClient) -> None:
    response = await worker.post(
        "/chat", json=chat_body(message="a" * 5_000_000), headers={INTERNAL_TOKEN_HEADER: TOKEN}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
