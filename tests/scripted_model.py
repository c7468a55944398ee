"""A model backend whose answer, timing and failure the test decides.

``ScriptedModel`` streams the deltas it was given. Gated, it yields a delta
only when the test ``allow``s it, and ``paused_before(n)`` waits until the
stream asks for delta ``n``: by then the consumer has finished with every
earlier delta (the generation published it), so a test steps a generation
chunk by chunk without sleeping.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncGenerator, Sequence

from chatrelay.exceptions import ModelError
from chatrelay.llm.base import GenerationParams, Turn
from chatrelay.llm.budget import approximate_tokens
from tests.timing import seconds

FAILURE_DETAIL = "the scripted model failed"


class ScriptedModel:
    """A ``ModelBackend`` streaming ``deltas``; optionally gated, optionally failing.

    ``fail_before``: raise ``failure`` (a ``ModelError`` by default) instead of
    yielding the delta of that index.
    """

    def __init__(
        self,
        deltas: Sequence[str],
        *,
        gated: bool = False,
        fail_before: int | None = None,
        failure: Exception | None = None,
    ) -> None:
        self.deltas = list(deltas)
        self._gate = asyncio.Semaphore(0) if gated else None
        self._fail_before = fail_before
        self._failure = failure or ModelError(FAILURE_DETAIL)
        self._asked: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)
        # The conversation of every stream asked for, in order.
        self.conversations: list[list[Turn]] = []
        self.closed = asyncio.Event()  # the last stream ended (finished, failed or closed)

    @property
    def answer(self) -> str:
        return "".join(self.deltas)

    def allow(self, count: int = 1) -> None:
        """Let a gated stream yield ``count`` more deltas."""
        assert self._gate is not None, "allow() is for a gated model"
        for _ in range(count):
            self._gate.release()

    async def paused_before(self, index: int) -> None:
        """Wait until the stream asks for delta ``index`` (0-based): all before it are consumed."""
        async with asyncio.timeout(seconds(10)):
            await self._asked[index].wait()

    @property
    def name(self) -> str:
        return "scripted"

    @property
    def description(self) -> str:
        return "scripted (tests)"

    async def load(self) -> None:
        return None

    def count_tokens(self, text: str) -> int:
        return approximate_tokens(text)

    async def stream(
        self, turns: list[Turn], params: GenerationParams
    ) -> AsyncGenerator[str, None]:
        self.conversations.append(list(turns))
        self.closed.clear()
        try:
            for index, delta in enumerate([*self.deltas, None]):
                self._asked[index].set()
                if index == self._fail_before:
                    raise self._failure
                if delta is None:
                    return
                if self._gate is not None:
                    await self._gate.acquire()
                yield delta
        finally:
            self.closed.set()

    async def aclose(self) -> None:
        return None
