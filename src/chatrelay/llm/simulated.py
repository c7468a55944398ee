"""The simulated model of the seed: canned answers streamed word by word.

A conversation ending in an assistant turn is a continuation (failover): the
answer goes on exactly after that partial text, so a continued answer equals
the uninterrupted one word for word.

Answers are chosen deterministically from the user's message, so tests can
predict them, and some are long (100+ words) so a generation can be cancelled
mid-way. A message containing ``#fail`` makes the model fail after a few words,
so the failure path can be seen without a broken server; one containing
``#code`` gets an answer with a fenced code block (highlighting, copy buttons),
one containing ``#words=N`` the N words ``word1 word2 ... wordN`` (long answers
for tests; ``max_tokens`` still caps them).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncGenerator

from chatrelay.exceptions import ModelError
from chatrelay.llm.base import GenerationParams, Turn
from chatrelay.llm.budget import approximate_tokens

SHORT_ANSWERS = (
    "Hello! I am the simulated assistant of chatrelay. Ask me anything and I will stream "
    "my answer to every tab of this conversation.",
    "That is a good question. In short: the gateway relays, the worker generates, and the "
    "engine keeps every chunk in order so nothing is lost.",
    "Sure. Each word you see arrives as its own chunk, numbered, with an offset that lets "
    "a reconnecting client ask for exactly what it missed.",
)

LONG_ANSWER = (
    "Let me explain how a streamed answer travels through chatrelay, step by step, because "
    "the path is short but every step has a job. First, your browser keeps a WebSocket open "
    "to a gateway node. When you send a message, the gateway gives it an identifier before "
    "anything else happens, so that a retried request can never start two generations. "
    "Then the gateway asks a worker to answer. The worker takes a lease on the session, "
    "which guarantees that only one generation writes to it at a time, and it stores your "
    "message. Next, the model produces the answer piece by piece, and every piece is "
    "appended to the session's log by the engine, which gives it the next offset and fans "
    "it out to every gateway that holds a socket of this session. Each gateway forwards the "
    "piece to its sockets through a bounded queue, so one slow reader never delays the "
    "others. Between pieces the worker checks whether anyone asked to stop, from any tab on "
    "any node. At the end it publishes the complete message with its final status, stores "
    "it, and releases the lease. If you refresh the page, the history comes back from the "
    "store; if your connection drops, you resume from the last offset you saw and miss "
    "nothing. That is the whole journey, and it takes only a few milliseconds per piece."
)

CODE_ANSWER = (
    "Here is a function that counts the words of a text:\n\n"
    "```python\n"
    "def count_words(text: str) -> int:\n"
    '    """How many words the text has."""\n'
    "    return len(text.split())\n"
    "```\n\n"
    "Call it as `count_words(answer)`."
)

_LONG_KEYWORDS = ("long", "explain", "story", "detail", "essay", "why", "how")
_FAIL_MARKER = "#fail"
_CODE_MARKER = "#code"
_WORDS_BEFORE_FAILURE = 3
_WORDS_MARKER = re.compile(r"#words=(\d{1,6})")


def choose_answer(message: str) -> str:
    """The answer the simulated model gives to ``message`` (deterministic)."""
    lowered = message.lower()
    if (words := _WORDS_MARKER.search(lowered)) is not None:
        return numbered_answer(int(words.group(1)))
    if _CODE_MARKER in lowered:
        return CODE_ANSWER
    if any(word in lowered for word in _LONG_KEYWORDS):
        return LONG_ANSWER
    digest = hashlib.sha256(message.encode()).digest()
    return SHORT_ANSWERS[digest[0] % len(SHORT_ANSWERS)]


def numbered_answer(count: int) -> str:
    """The answer to ``#words=N``: ``word1 word2 ... wordN`` (an answer of any length
    whose every chunk is different, for tests of long answers)."""
    return " ".join(f"word{n}" for n in range(1, max(count, 1) + 1))


def split_words(text: str) -> list[str]:
    """Split ``text`` into deltas that join back to it exactly (word plus its space)."""
    words = text.split(" ")
    return [word + " " for word in words[:-1]] + [words[-1]]


class SimulatedModel:
    """Streams canned answers word by word, ``chunk_delay`` seconds apart."""

    def __init__(self, chunk_delay: float = 0.05) -> None:
        self._chunk_delay = chunk_delay

    @property
    def name(self) -> str:
        return "simulated"

    @property
    def description(self) -> str:
        return self.name

    async def load(self) -> None:
        return None

    def count_tokens(self, text: str) -> int:
        return approximate_tokens(text)

    async def stream(
        self, turns: list[Turn], params: GenerationParams
    ) -> AsyncGenerator[str, None]:
        prefix = ""
        if turns and turns[-1].role == "assistant":  # a continuation: go on after the prefix
            prefix, turns = turns[-1].content, turns[:-1]
        users = [turn.content for turn in turns if turn.role == "user"]
        message = users[-1] if users else ""
        deltas = split_words(choose_answer(message))[: max(params.max_tokens, 1)]
        start = len(prefix)
        for index, delta in enumerate(deltas):
            # The answer is deterministic: skip what the prefix already holds.
            if start >= len(delta):
                start -= len(delta)
                continue
            delta, start = delta[start:], 0
            if index and self._chunk_delay > 0:
                await asyncio.sleep(self._chunk_delay)
            if _FAIL_MARKER in message and index == _WORDS_BEFORE_FAILURE:
                raise ModelError("the simulated model failed on purpose (#fail)")
            yield delta

    async def aclose(self) -> None:
        return None
