"""What the model is shown: the system prompt and the session's earlier turns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chatrelay.llm.base import Turn

# Without a tokenizer at hand, about four characters make a token in English.
CHARS_PER_TOKEN = 4


def approximate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


def build_turns(
    messages: Iterable[dict[str, Any]], *, system_prompt: str, budget_tokens: int
) -> list[Turn]:
    """The system prompt plus the newest stored turns that fit in ``budget_tokens``.

    Unfinished or empty assistant messages are left out; the last turn (the
    user's new message) is always kept.
    """
    turns = [
        Turn(message["role"], message["content"])
        for message in messages
        if message["content"] and message["status"] != "streaming"
    ]
    budget = budget_tokens - approximate_tokens(system_prompt)
    kept: list[Turn] = []
    for turn in reversed(turns):
        cost = approximate_tokens(turn.content)
        if kept and cost > budget:
            break
        kept.append(turn)
        budget -= cost
    head = [Turn("system", system_prompt)] if system_prompt else []
    return head + kept[::-1]
