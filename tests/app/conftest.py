"""The in-process app every test of this directory talks to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.app.inprocess import InProcessApp, running_app


@pytest.fixture
async def chat_app(tmp_path: Path) -> AsyncIterator[InProcessApp]:
    """A fresh all-in-one app with its own SQLite file."""
    async with running_app(tmp_path / "chatrelay.db") as running:
        yield running
