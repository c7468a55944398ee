"""Fit a conversation into the model's context window.

The generation loop builds ``[system prompt] + earlier turns + the user's message``
and trims it here before calling a backend, so a long session never overflows the
model's context. Trimming is pure: no I/O, no model needed, the token counter is
passed in (approximate by default, exact for a backend that can tokenize).
"""

from __future__ import annotations

from collections.abc import Callable

from chatrelay.llm.base import Turn

TokenCounter = Callable[[str], int]

# English text averages about four characters per token with the BPE vocabularies
# of current chat models; rounding up errs on the side of sending less.
CHARS_PER_TOKEN = 4
# Each turn costs a few tokens beyond its text: the chat template's role header and
# end-of-turn markers (``<|im_start|>user\n ... <|im_end|>\n`` is 5 tokens in ChatML).
TOKENS_PER_TURN = 5


def approximate_tokens(text: str) -> int:
    """An estimate of how many tokens ``text`` takes (``ceil(len / 4)``); never raises."""
    return -(-len(text) // CHARS_PER_TOKEN)


def trim_to_budget(
    turns: list[Turn], budget_tokens: int, count_tokens: TokenCounter = approximate_tokens
) -> list[Turn]:
    """The turns to send: leading system turns and the newest turns that fit ``budget_tokens``.

    - Leading ``system`` turns are always kept, as is the newest turn (the user's
      message): a model needs both to answer at all, even past the budget.
    - Older turns are dropped oldest first, whole (a turn is never cut in half).
    - After trimming, the kept history does not start with an ``assistant`` turn:
      chat templates expect a user turn after the system prompt, and an answer
      without its question misleads the model.

    ``budget_tokens`` is what the prompt may take: the context window less the
    tokens reserved for the answer. Each turn costs ``count_tokens(content)`` plus
    ``TOKENS_PER_TURN``. The input list is not modified.
    """
    if not turns:
        return []
    head_end = 0
    while head_end < len(turns) - 1 and turns[head_end].role == "system":
        head_end += 1
    head, body = turns[:head_end], turns[head_end:]

    def cost(turn: Turn) -> int:
        return count_tokens(turn.content) + TOKENS_PER_TURN

    remaining = budget_tokens - sum(cost(turn) for turn in head) - cost(body[-1])
    start = len(body) - 1
    while start > 0:
        needed = cost(body[start - 1])
        if needed > remaining:
            break
        remaining -= needed
        start -= 1
    while start < len(body) - 1 and body[start].role == "assistant":
        start += 1
    return head + body[start:]
