"""Failover and failure rules of OpenAICompatModel, on an in-memory transport.

The real server (llama.cpp's) is exercised in tests/integration/llm/.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx2 as httpx
import pytest

from chatrelay.exceptions import ModelError
from chatrelay.llm.base import GenerationParams, Turn
from chatrelay.llm.openai_compat import OpenAICompatModel

TURNS = [Turn("system", "be brief"), Turn("user", "hello")]
PARAMS = GenerationParams(max_tokens=16)


def sse(*events: dict[str, object] | str) -> bytes:
    lines = []
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        lines.append(f"data: {data}\n\n")
    return "".join(lines).encode()


def chunk(content: str | None = None, finish_reason: str | None = None) -> dict[str, object]:
    delta = {} if content is None else {"content": content}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


ANSWER = sse(chunk("Hel"), chunk("lo"), chunk(finish_reason="stop"), "[DONE]")


def streaming(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


Handler = Callable[[httpx.Request], httpx.Response]


def model(routes: dict[str, Handler], seen: list[str]) -> OpenAICompatModel:
    def handle(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        seen.append(host)
        return routes[host](request)

    return OpenAICompatModel(
        [f"http://{host}/v1" for host in routes],
        model="m",
        transport=httpx.MockTransport(handle),
    )


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [delta async for delta in stream]


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


async def test_streams_deltas_and_sends_the_conversation() -> None:
    bodies: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return streaming(ANSWER)

    seen: list[str] = []
    backend = model({"a": answer}, seen)
    assert await collect(backend.stream(TURNS, PARAMS)) == ["Hel", "lo"]
    await backend.aclose()
    assert bodies[0]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert bodies[0]["stream"] is True
    assert bodies[0]["max_tokens"] == 16
    assert bodies[0]["model"] == "m"


@pytest.mark.parametrize(
    "failure",
    [
        refuse,
        lambda request: httpx.Response(503, json={"error": {"message": "overloaded"}}),
        lambda request: httpx.Response(429, json={"error": {"message": "slow down"}}),
        lambda request: streaming(sse("[DONE]")),  # ends with no token and no finish reason
    ],
    ids=["refused", "503", "429", "empty-stream"],
)
async def test_failure_before_first_token_moves_to_next_endpoint(failure: Handler) -> None:
    seen: list[str] = []
    backend = model({"a": failure, "b": lambda request: streaming(ANSWER)}, seen)
    assert await collect(backend.stream(TURNS, PARAMS)) == ["Hel", "lo"]
    assert seen == ["a", "b"]
    # The failed endpoint is cooled down: the next stream goes to b first.
    seen.clear()
    assert await collect(backend.stream(TURNS, PARAMS)) == ["Hel", "lo"]
    assert seen == ["b"]
    await backend.aclose()


async def test_client_error_is_not_retried_elsewhere() -> None:
    seen: list[str] = []
    backend = model(
        {
            "a": lambda request: httpx.Response(404, json={"error": {"message": "no such model"}}),
            "b": lambda request: streaming(ANSWER),
        },
        seen,
    )
    with pytest.raises(ModelError, match="HTTP 404"):
        await collect(backend.stream(TURNS, PARAMS))
    assert seen == ["a"]
    await backend.aclose()


async def test_all_endpoints_down_names_each_reason() -> None:
    seen: list[str] = []
    backend = model({"a": refuse, "b": lambda request: httpx.Response(500)}, seen)
    with pytest.raises(ModelError) as caught:
        await collect(backend.stream(TURNS, PARAMS))
    assert "model endpoint 1: connection error" in caught.value.detail
    assert "model endpoint 2: HTTP 500" in caught.value.detail
    assert "http://" not in caught.value.detail  # users see this; the URLs stay in the log
    await backend.aclose()


async def test_truncated_stream_after_first_token_is_a_failure_not_an_answer() -> None:
    seen: list[str] = []
    truncated = sse(chunk("Hel"), chunk("lo"))  # no finish_reason, no [DONE]
    backend = model(
        {"a": lambda request: streaming(truncated), "b": lambda request: streaming(ANSWER)},
        seen,
    )
    received: list[str] = []
    with pytest.raises(ModelError, match="broke off"):
        async for delta in backend.stream(TURNS, PARAMS):
            received.append(delta)
    assert received == ["Hel", "lo"]
    assert seen == ["a"]  # never retried elsewhere once text was shown
    await backend.aclose()


async def test_broken_connection_after_first_token_is_a_failure() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield sse(chunk("Hel"))
        raise httpx.RemoteProtocolError("peer closed connection")

    seen: list[str] = []
    backend = model(
        {
            "a": lambda request: httpx.Response(
                200, content=body(), headers={"content-type": "text/event-stream"}
            )
        },
        seen,
    )
    received: list[str] = []
    with pytest.raises(ModelError, match="peer closed connection"):
        async for delta in backend.stream(TURNS, PARAMS):
            received.append(delta)
    assert received == ["Hel"]
    await backend.aclose()


async def test_closing_the_iterator_closes_the_upstream_response() -> None:
    closed: list[bool] = []

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for index in range(1000):
                yield sse(chunk(f"t{index} "))

        async def aclose(self) -> None:
            closed.append(True)

    seen: list[str] = []
    backend = model(
        {
            "a": lambda request: httpx.Response(
                200, stream=Body(), headers={"content-type": "text/event-stream"}
            )
        },
        seen,
    )
    stream = backend.stream(TURNS, PARAMS)
    assert [await anext(stream) for _ in range(3)] == ["t0 ", "t1 ", "t2 "]
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed == [True]
    await backend.aclose()
