"""Fixtures shared by every test directory, and the two tiers of the suite.

- fast (``make test-fast``, ``pytest -m "not external"``): in process, no
  binary; the all-in-one app runs in the test's event loop (``tests/app``).
- ``external``: starts a real redis-server, PostgreSQL, nginx, llama.cpp,
  Chromium or ``chatrelay`` process, or needs the local model, which only
  ``make test`` installs (``make test`` runs both tiers).

Tests are marked here, not by hand: a test is ``external`` when it lives in
``tests/integration`` or ``tests/e2e``, uses a fixture that starts a binary, or
is the ``redis``/``postgres`` case of a contract suite. So a new test lands in
its tier by itself (what no fixture names, such as the local model or
``nginx -t``, is marked by hand); and a fast test that sets up such a fixture
anyway (via ``request.getfixturevalue``) fails, so the fast tier stays
binary-free.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.redis_server", "tests.fixtures.redis_cluster"]

TESTS = Path(__file__).parent
EXTERNAL_DIRS = (TESTS / "integration", TESTS / "e2e")
# Fixtures that start a binary or a chatrelay process (or stand on one that does).
EXTERNAL_FIXTURES = frozenset(
    {
        "redis_server",
        "redis_url",
        "redis_cluster",
        "redis_cluster_url",
        "postgres_server",
        "kafka_server",
        "server",
        "cluster",
        "fault_cluster",
        "gateway_sources",
        "sharded_cluster",
        "each_cluster",
        "each_gateway_sources",
        "llama_server",
        "doomed_llama_server",
        "chat_server",
        "browser",
        "balancer",
        "helm",
    }
)
# Parameter values that select a real server in the contract suites.
EXTERNAL_PARAMS = frozenset({"redis", "redis-cluster", "postgres"})


def _needs_binaries(item: pytest.Item) -> bool:
    if any(parent in item.path.parents for parent in EXTERNAL_DIRS):
        return True
    if EXTERNAL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and any(
        isinstance(value, str) and value in EXTERNAL_PARAMS for value in callspec.params.values()
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _needs_binaries(item) and item.get_closest_marker("external") is None:
            item.add_marker(pytest.mark.external)


class FastTierGuard:
    """Fails a fast test that sets up a fixture which starts a binary.

    A plugin, not conftest hooks: a session-scoped fixture is set up through
    the session's hooks, which do not include a conftest's.
    """

    def __init__(self) -> None:
        self.running: pytest.Item | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.running = item

    @pytest.hookimpl(tryfirst=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[object]) -> None:
        item = self.running
        if fixturedef.argname not in EXTERNAL_FIXTURES or item is None:
            return
        if item.get_closest_marker("external") is None:
            pytest.fail(
                f"{item.nodeid} is in the fast tier but sets up {fixturedef.argname!r}, which "
                "starts a binary: add the fixture to EXTERNAL_FIXTURES or mark the test external",
                pytrace=False,
            )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(FastTierGuard(), "chatrelay-fast-tier-guard")
