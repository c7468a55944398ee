"""What the model is shown: the system prompt and the session's earlier turns."""

from __future__ import annotations

from collections.abc import Iterable

from chatrelay.llm.base import Turn
from chatrelay.llm.budget import TokenCounter, approximate_tokens, trim_to_budget
from chatrelay.store.records import MessageRecord


def build_turns(
    messages: Iterable[MessageRecord],
    *,
    system_prompt: str,
    budget_tokens: int,
    count_tokens: TokenCounter = approximate_tokens,
) -> list[Turn]:
    """The system prompt plus the newest stored turns that fit in ``budget_tokens``.

    ``messages`` are the session's stored messages, oldest first, ending with the
    user's new one. Unfinished or empty assistant messages are left out.
    """
    turns = [Turn("system", system_prompt)] if system_prompt else []
    turns += [
        Turn(message.role, message.content)
        for message in messages
        if message.content and message.status != "streaming"
    ]
    return trim_to_budget(turns, budget_tokens, count_tokens)
