"""Real servers for the integration tests, started on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.processes import Server, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One all-in-one ``chatrelay serve`` shared by the tests of a run."""
    running = start_server(tmp_path_factory.mktemp("server"))
    try:
        yield running
    finally:
        running.process.stop()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
