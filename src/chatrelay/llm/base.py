"""The one interface every model backend implements.

A backend turns a conversation into an async iterator of text deltas. The
generation loop (``worker/generation.py``) owns everything around it: leases,
publishing, cancellation, storage, usage figures.

Guarantees a backend gives:

- ``stream()`` yields non-empty ``str`` deltas in order; joined, they are the answer.
- Cancel-safe: the consumer may stop iterating at any point (``aclose()`` on the
  iterator, or cancelling the task that iterates). The backend then stops its
  upstream work promptly (closes the HTTP stream, stops local generation) and
  releases what it holds.
- Failure: a backend raises :class:`chatrelay.exceptions.ModelError` (with a
  reason a user may read) when the model cannot answer. Whether text was already
  yielded decides, in the generation loop, between retrying elsewhere and
  ending the message as ``failed``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the conversation as the model sees it."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Per-call knobs; backends ignore what they cannot honour."""

    max_tokens: int = 512
    temperature: float = 0.7


class ModelBackend(Protocol):
    """A model that streams an answer to a conversation."""

    @property
    def name(self) -> str:
        """The model's name as shown to users (``/health``, ``complete.usage``)."""
        ...

    @property
    def description(self) -> str:
        """One line saying which model answers and from where (start-up banner, ``/health``).

        E.g. ``local SmolLM2-135M-Instruct (llama.cpp in-process, /…/smollm2.gguf)``,
        ``openai-compatible gpt-4o-mini at https://api.openai.com/v1``, ``simulated``.
        """
        ...

    async def load(self) -> None:
        """Get ready to answer (load weights) before the first chat needs it; may be a no-op."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes for this model: exact if it can tokenize, else estimated.

        Pure and quick: the generation loop calls it per turn when trimming history.
        """
        ...

    def stream(self, turns: list[Turn], params: GenerationParams) -> AsyncGenerator[str, None]:
        """Yield the answer to ``turns`` (the last one is the user's) as text deltas.

        An async generator: ``aclose()`` on it stops the upstream work (see above).
        """
        ...

    async def aclose(self) -> None:
        """Release what the backend holds (HTTP clients, model weights)."""
        ...
