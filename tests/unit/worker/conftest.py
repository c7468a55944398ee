"""What the worker's unit tests run on: the memory engine with faults, SQLite in a temp file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatrelay.store.conversations import ConversationStore
from tests.faulty_engine import Faults, faulty_engine

# Small enough that a long answer trims its own beginning from the log.
MAX_EVENTS = 8


@pytest.fixture
async def faults() -> AsyncIterator[Faults]:
    """The memory engine (logs capped at ``MAX_EVENTS``) and the handles on its faults."""
    created = faulty_engine(max_events=MAX_EVENTS)
    yield created
    await created.engine.aclose()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ConversationStore]:
    """A fresh, migrated store in its own SQLite file."""
    async with ConversationStore(f"sqlite+aiosqlite:///{tmp_path / 'chatrelay.db'}") as opened:
        yield opened
