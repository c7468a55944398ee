"""Fixtures for the model backend tests (see llama_servers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.llm.llama_servers import LlamaServer, start_llama_server


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One server for a test module (tests must leave it idle)."""
    server = start_llama_server(tmp_path_factory.mktemp("llama-server"))
    yield server
    server.stop()


@pytest.fixture
def doomed_llama_server(tmp_path: Path) -> Iterator[LlamaServer]:
    """A server of the test's own, which the test may kill."""
    server = start_llama_server(tmp_path)
    yield server
    server.stop()
