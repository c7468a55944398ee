"""The upstream balancer against real HTTP servers standing in for workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chatrelay.exceptions import Busy, Unavailable
from chatrelay.gateway.upstream import HttpBalancer
from chatrelay.harness.processes import free_port
from chatrelay.rest import GenerationRequest
from tests.timing import wait_until


@dataclass
class FakeWorker:
    """A real HTTP server on loopback whose answers a test sets (it runs no model)."""

    chat_status: int = 202
    health_status: int = 200
    calls: list[str] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            self.calls.append(body["message_id"])
            if self.chat_status != 202:
                return JSONResponse({"code": "x", "detail": "refused"}, self.chat_status)
            return JSONResponse(
                {
                    "message_id": body["message_id"],
                    "session_id": body["session_id"],
                    "status": "streaming",
                },
                202,
            )

        async def health(request: Request) -> JSONResponse:
            return JSONResponse({"status": "ok"}, self.health_status)

        return Starlette(routes=[Route("/chat", chat, methods=["POST"]), Route("/health", health)])


@contextlib.asynccontextmanager
async def serving(*workers: FakeWorker) -> AsyncIterator[None]:
    servers = []
    for worker in workers:
        port = free_port()
        worker.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(worker.app(), host="127.0.0.1", port=port, log_level="error")
        server = uvicorn.Server(config)
        servers.append((server, asyncio.create_task(server.serve())))
    await wait_until(lambda: all(server.started for server, _ in servers), "fake workers listen")
    try:
        yield
    finally:
        for server, task in servers:
            server.should_exit = True
            await task


def request(n: int = 0) -> GenerationRequest:
    return GenerationRequest(session_id=f"s{n}", user_id="u", message="hi", message_id=f"m{n}")


async def test_round_robin_spreads_requests() -> None:
    a, b = FakeWorker(), FakeWorker()
    async with serving(a, b):
        balancer = HttpBalancer([a.url, b.url], "token")
        for n in range(4):
            accepted = await balancer.start(request(n))
            assert accepted.message_id == f"m{n}"
        await balancer.aclose()
    assert len(a.calls) == len(b.calls) == 2


async def test_a_failing_node_is_skipped_then_cooled_down_and_probed_back() -> None:
    broken, healthy = FakeWorker(chat_status=500, health_status=503), FakeWorker()
    async with (
        serving(broken, healthy),
        HttpBalancer([broken.url, healthy.url], "token") as balancer,
    ):
        for n in range(4):
            await balancer.start(request(n))  # every one succeeds on the healthy node
        states = {node["url"]: node["state"] for node in balancer.health()}
        assert states[broken.url] == "cooldown"
        calls_while_cool = len(broken.calls)
        await balancer.start(request(9))
        assert len(broken.calls) == calls_while_cool  # skipped while cooling down

        broken.chat_status, broken.health_status = 202, 200
        await wait_until(lambda: balancer.health()[0]["state"] == "up", "the worker probed back up")
        await balancer.start(request(10))
        await balancer.start(request(11))
        assert len(broken.calls) > calls_while_cool


async def test_a_refusal_is_not_retried_elsewhere() -> None:
    busy, other = FakeWorker(chat_status=409), FakeWorker()
    async with serving(busy, other):
        balancer = HttpBalancer([busy.url, other.url], "token")
        with pytest.raises(Busy):
            await balancer.start(request())
        await balancer.aclose()
    assert other.calls == []


async def test_every_node_down_is_unavailable() -> None:
    balancer = HttpBalancer(
        [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"], "token"
    )
    with pytest.raises(Unavailable) as refused:
        await balancer.start(request())
    assert "no worker could take the request" in refused.value.detail
    assert all(node["failures"] == 1 for node in balancer.health())
    await balancer.aclose()
