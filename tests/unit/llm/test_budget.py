from __future__ import annotations

from chatrelay.llm.base import Turn
from chatrelay.llm.budget import (
    TOKENS_PER_TURN,
    approximate_tokens,
    trim_to_budget,
)
from chatrelay.llm.simulated import SimulatedModel


def words(text: str) -> int:
    """A counter that is easy to reason about: one token per word."""
    return len(text.split())


def conversation(pairs: int) -> list[Turn]:
    turns = [Turn("system", "be brief")]
    for index in range(pairs):
        turns.append(Turn("user", f"question {index}"))
        turns.append(Turn("assistant", f"answer {index}"))
    turns.append(Turn("user", "last question"))
    return turns


def test_approximate_tokens_rounds_up_four_chars_per_token() -> None:
    assert approximate_tokens("") == 0
    assert approximate_tokens("abc") == 1
    assert approximate_tokens("abcd") == 1
    assert approximate_tokens("abcde") == 2
    assert approximate_tokens("x" * 400) == 100


def test_everything_fits_nothing_is_dropped() -> None:
    turns = conversation(3)
    assert trim_to_budget(turns, 10_000, words) == turns


def test_keeps_system_prompt_and_newest_turns() -> None:
    turns = conversation(5)
    per_turn = 2 + TOKENS_PER_TURN  # every turn here is two words
    # room for the system prompt, the last question and two more turns
    budget = 4 * per_turn
    kept = trim_to_budget(turns, budget, words)
    assert kept[0] == Turn("system", "be brief")
    assert kept[-1] == Turn("user", "last question")
    assert kept[1:-1] == [Turn("user", "question 4"), Turn("assistant", "answer 4")]


def test_never_starts_history_with_an_assistant_turn() -> None:
    turns = conversation(5)
    per_turn = 2 + TOKENS_PER_TURN
    # room for exactly one older turn: that would be "answer 4", an answer without its question
    kept = trim_to_budget(turns, 3 * per_turn, words)
    assert kept == [Turn("system", "be brief"), Turn("user", "last question")]


def test_keeps_system_and_last_turn_even_over_budget() -> None:
    turns = conversation(2)
    kept = trim_to_budget(turns, 1, words)
    assert kept == [turns[0], turns[-1]]


def test_without_system_prompt() -> None:
    turns = conversation(2)[1:]
    per_turn = 2 + TOKENS_PER_TURN
    kept = trim_to_budget(turns, 3 * per_turn, words)
    assert kept == turns[-3:]
    assert kept[0].role == "user"


def test_only_the_user_message() -> None:
    turns = [Turn("user", "hi")]
    assert trim_to_budget(turns, 0) == turns
    assert trim_to_budget([], 100) == []


def test_input_list_is_not_modified() -> None:
    turns = conversation(4)
    copy = list(turns)
    trim_to_budget(turns, 10, words)
    assert turns == copy


def test_uses_the_default_approximate_counter() -> None:
    long_turn = "x" * 4000  # about 1000 tokens
    turns = [
        Turn("system", "s"),
        Turn("user", long_turn),
        Turn("assistant", long_turn),
        Turn("user", "short"),
        Turn("assistant", "short"),
        Turn("user", "now"),
    ]
    kept = trim_to_budget(turns, 200)
    assert kept == [turns[0], turns[3], turns[4], turns[5]]


def test_a_backend_that_cannot_tokenize_counts_by_estimate() -> None:
    assert SimulatedModel().count_tokens("abcdefgh") == approximate_tokens("abcdefgh") == 2
