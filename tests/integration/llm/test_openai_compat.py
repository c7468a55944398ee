"""OpenAICompatModel against a real OpenAI-compatible server (llama.cpp's)."""

from __future__ import annotations

import asyncio
import time

import pytest

from chatrelay.exceptions import ModelError
from chatrelay.harness.processes import free_port
from chatrelay.llm.base import GenerationParams, Turn
from chatrelay.llm.openai_compat import OpenAICompatModel
from tests.integration.llm.llama_servers import LlamaServer
from tests.timing import seconds

SYSTEM = Turn("system", "You are a helpful assistant.")
LONG_QUESTION = Turn("user", "Write a long story about a dragon who learns to bake bread.")
# The most tokens a server may produce after the client cancelled (issue 6).
MAX_TOKENS_AFTER_CANCEL = 2


def backend(*base_urls: str) -> OpenAICompatModel:
    return OpenAICompatModel(list(base_urls), model="smollm2-135m", connect_timeout=2.0)


async def test_streams_real_tokens(llama_server: LlamaServer) -> None:
    model = backend(llama_server.base_url)
    before = len(llama_server.sampled_times())
    started = time.monotonic()
    first_token_after: float | None = None
    deltas: list[str] = []
    params = GenerationParams(max_tokens=48, temperature=0.0)
    async with asyncio.timeout(seconds(60)):
        async for delta in model.stream(
            [SYSTEM, Turn("user", "What is the capital of France? Answer in one sentence.")], params
        ):
            if first_token_after is None:
                first_token_after = time.monotonic() - started
            deltas.append(delta)
    await model.aclose()
    answer = "".join(deltas)
    print(
        f"\nopenai backend: {len(deltas)} deltas, first after {first_token_after:.3f}s: {answer!r}"
    )
    assert len(deltas) >= 3
    assert all(deltas)
    assert "Paris" in answer
    sampled = len(llama_server.wait_until_idle()) - before
    assert len(deltas) <= sampled <= params.max_tokens


async def test_cancel_closes_the_upstream_stream(llama_server: LlamaServer) -> None:
    model = backend(llama_server.base_url)
    before = len(llama_server.sampled_times())
    stream = model.stream([SYSTEM, LONG_QUESTION], GenerationParams(max_tokens=400))
    received = [await anext(stream) for _ in range(5)]
    cancelled_at = time.monotonic()
    await stream.aclose()  # type: ignore[attr-defined]
    closed_in = time.monotonic() - cancelled_at

    times = llama_server.wait_until_idle()[before:]
    after_cancel = sum(1 for at in times if at > cancelled_at)
    print(
        f"\nopenai cancel: {len(received)} deltas shown, server sampled {len(times)} in all, "
        f"{after_cancel} after the cancel; aclose took {closed_in * 1000:.1f} ms"
    )
    assert after_cancel <= MAX_TOKENS_AFTER_CANCEL
    assert len(times) < 40  # far from the 400 it was asked for
    # The server is free again: a new request is answered.
    answer = [d async for d in model.stream([Turn("user", "Hi")], GenerationParams(max_tokens=4))]
    assert answer
    await model.aclose()


async def test_cancelling_the_consumer_task_closes_the_upstream(llama_server: LlamaServer) -> None:
    model = backend(llama_server.base_url)
    before = len(llama_server.sampled_times())
    received: list[str] = []
    three = asyncio.Event()

    async def consume() -> None:
        async for delta in model.stream([SYSTEM, LONG_QUESTION], GenerationParams(max_tokens=400)):
            received.append(delta)
            if len(received) == 3:
                three.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(three.wait(), seconds(60))
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    times = llama_server.wait_until_idle()[before:]
    after_cancel = sum(1 for at in times if at > cancelled_at)
    print(f"\nopenai task cancel: {after_cancel} tokens after the cancel")
    assert after_cancel <= MAX_TOKENS_AFTER_CANCEL
    await model.aclose()


async def test_endpoint_that_is_down_is_skipped_before_the_first_token(
    llama_server: LlamaServer,
) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    model = backend(down, llama_server.base_url)
    started = time.monotonic()
    deltas = [
        d async for d in model.stream([Turn("user", "Say hello.")], GenerationParams(max_tokens=8))
    ]
    elapsed = time.monotonic() - started
    print(f"\nopenai failover: answered in {elapsed:.3f}s past a down endpoint")
    assert deltas
    await model.aclose()


async def test_every_endpoint_down_is_a_model_error() -> None:
    model = backend(f"http://127.0.0.1:{free_port()}/v1", f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(ModelError, match="no model endpoint could answer") as caught:
        async for _ in model.stream([Turn("user", "Hi")], GenerationParams(max_tokens=4)):
            pass
    assert caught.value.detail.count("connection error") == 2
    await model.aclose()


async def test_server_killed_mid_answer_is_a_model_error_after_partial_text(
    doomed_llama_server: LlamaServer, llama_server: LlamaServer
) -> None:
    # A healthy second endpoint must NOT be tried once text was shown: the answer
    # would restart from scratch under the partial one.
    model = backend(doomed_llama_server.base_url, llama_server.base_url)
    healthy_before = len(llama_server.sampled_times())
    partial: list[str] = []
    with pytest.raises(ModelError, match="broke off") as caught:
        async with asyncio.timeout(seconds(60)):
            async for delta in model.stream(
                [SYSTEM, LONG_QUESTION], GenerationParams(max_tokens=400)
            ):
                partial.append(delta)
                if len(partial) == 5:
                    doomed_llama_server.kill()
    print(f"\nopenai server killed: kept {len(partial)} deltas; error: {caught.value.detail}")
    assert len(partial) >= 5
    assert "".join(partial).strip()
    assert len(llama_server.sampled_times()) == healthy_before
    await model.aclose()


async def test_a_continuation_goes_on_after_the_partial_answer(llama_server: LlamaServer) -> None:
    """Failover: the partial answer is the final assistant message; the server prefills it."""
    model = backend(llama_server.base_url)
    question = Turn("user", "What is the capital of France? Answer in one sentence.")
    prefix = "The capital of France is"
    params = GenerationParams(max_tokens=16, temperature=0.0)
    async with asyncio.timeout(seconds(60)):
        deltas = [
            d async for d in model.stream([SYSTEM, question, Turn("assistant", prefix)], params)
        ]
    await model.aclose()
    continuation = "".join(deltas)
    print(f"\nopenai continuation of {prefix!r}: {continuation!r}")
    assert "Paris" in continuation.split(".")[0]  # the same sentence goes on
    assert not continuation.lstrip().startswith(prefix)  # not an answer started anew
