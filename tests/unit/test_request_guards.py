"""Request ids, the last error boundary and the body limit (issue 17, findings 1 and 2)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from chatrelay.request_guards import REQUEST_ID_HEADER, BodyLimit
from chatrelay.service_app import create_service_app

LIMIT = 64 * 1024
CHUNK = 16 * 1024


class _Nothing:
    async def drain(self) -> None:
        """Nothing runs."""


@asynccontextmanager
async def _no_services() -> AsyncIterator[_Nothing]:
    yield _Nothing()


def tiny_app() -> FastAPI:
    app = create_service_app("tiny", _no_services, LIMIT)

    @app.get("/boom")
    async def boom() -> None:
        secret = "prompt-of-the-user-7d1e"  # a local a traceback with locals would print
        raise RuntimeError(f"failed after reading {len(secret)} characters")

    @app.post("/echo")
    async def echo(body: dict[str, str]) -> dict[str, str]:
        return body

    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://tiny")


async def test_finding_1_an_unhandled_error_is_one_record_and_a_bare_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with client(tiny_app()) as http:
        response = await http.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body == {
        "code": "internal",
        "detail": "internal error",
        "request_id": body["request_id"],
    }
    assert response.headers[REQUEST_ID_HEADER] == body["request_id"]
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1, [record.getMessage() for record in errors]
    assert errors[0].__dict__["error"] == "RuntimeError"
    assert errors[0].__dict__["request_id"] == body["request_id"]


async def test_every_answer_names_its_request(caplog: pytest.LogCaptureFixture) -> None:
    async with client(tiny_app()) as http:
        first = await http.post("/echo", json={"a": "b"})
        second = await http.post("/echo", json={"a": "b"})
    assert first.status_code == 200
    assert first.headers[REQUEST_ID_HEADER] != second.headers[REQUEST_ID_HEADER]


async def test_finding_2_a_body_over_the_limit_is_413_too_large() -> None:
    async with client(tiny_app()) as http:
        over = await http.post("/echo", json={"a": "x" * LIMIT})
        under = await http.post("/echo", json={"a": "x" * (LIMIT - 100)})
    assert over.status_code == 413
    assert over.json()["code"] == "too_large"
    assert str(LIMIT) in over.json()["detail"]
    assert under.status_code == 200


class _Recorder:
    """An inner app that reads the whole body, recording what it saw."""

    def __init__(self) -> None:
        self.called = False
        self.bytes_seen = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.called = True
        more = True
        while more:
            message = await receive()
            self.bytes_seen += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})


def _scope(headers: list[tuple[bytes, bytes]]) -> Scope:
    return {"type": "http", "method": "POST", "path": "/", "headers": headers}


class _Answer:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        return int(starts[0]["status"])


async def test_finding_2_a_declared_length_over_the_limit_is_refused_unread() -> None:
    inner, answer = _Recorder(), _Answer()
    reads = 0

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": True}

    declared = str(100 * 1024 * 1024).encode()
    await BodyLimit(inner, LIMIT)(_scope([(b"content-length", declared)]), receive, answer)
    assert answer.status == 413
    assert not inner.called
    assert reads == 0


async def test_finding_2_a_streamed_body_is_cut_at_the_limit() -> None:
    inner, answer = _Recorder(), _Answer()
    reads = 0

    async def endless_chunks() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": True}

    await BodyLimit(inner, LIMIT)(_scope([]), endless_chunks, answer)
    assert answer.status == 413
    assert reads * CHUNK <= LIMIT + CHUNK
    assert inner.bytes_seen <= LIMIT


async def test_finding_2_a_chunked_body_over_the_limit_is_413_through_the_app() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"a": "'
        for _ in range(2 * LIMIT // CHUNK):
            yield b"x" * CHUNK
        yield b'"}'

    async with client(tiny_app()) as http:
        response = await http.post("/echo", content=chunks())
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


def test_finding_1_an_unhandled_error_on_a_socket_is_one_record_and_close_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = tiny_app()

    @app.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        secret = "prompt-of-the-user-7d1e"
        raise RuntimeError(f"failed after {len(secret)} characters")

    caplog.set_level(logging.DEBUG)
    with TestClient(app) as test_client, test_client.websocket_connect("/ws") as websocket:
        with pytest.raises(WebSocketDisconnect) as closed:
            websocket.receive_text()
    assert closed.value.code == 1011
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.__dict__["error"] for record in errors] == ["RuntimeError"]


def test_a_socket_route_takes_its_websockets_before_the_middleware_stack() -> None:
    """``ServiceApp.socket_routes``: the chat socket's fast path (gateway/app.py) skips the
    HTTP middleware and the router; other WebSockets and HTTP still pass through them."""
    seen: list[tuple[str, str]] = []

    class Recorder:
        def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "lifespan":
                seen.append(("middleware", scope["path"]))
            await self.app(scope, receive, send)

    app = tiny_app()
    app.add_middleware(Recorder)

    async def fast(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(("fast", scope["path"]))
        socket = WebSocket(scope, receive, send)
        await socket.accept()
        await socket.send_text(type(scope["app"]).__name__)  # the app is in the scope
        await socket.close()

    @app.websocket("/ws/routed")
    async def routed(socket: WebSocket) -> None:
        await socket.accept()
        await socket.send_text("routed")
        await socket.close()

    app.socket_routes["/ws/fast"] = fast
    with TestClient(app) as test_client:
        with test_client.websocket_connect("/ws/fast") as socket:
            assert socket.receive_text() == "ServiceApp"
        with test_client.websocket_connect("/ws/routed") as socket:
            assert socket.receive_text() == "routed"
        assert test_client.post("/echo", json={"a": "b"}).json() == {"a": "b"}
    assert seen == [("fast", "/ws/fast"), ("middleware", "/ws/routed"), ("middleware", "/echo")]
