"""A real ``chatrelay serve`` and Debian's Chromium, driven by Playwright.

The browser is the system's (``/usr/bin/chromium``): Playwright's Python
package brings its own driver, and nothing here downloads a browser build.
Each test gets a fresh server (its own SQLite file) and a fresh browser
context, and leaves a screenshot in ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatrelay.harness.processes import free_port
from tests.fixtures.processes import REPO, Server, start_server
from tests.timing import seconds

CHROMIUM = os.environ.get("CHATRELAY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STATIC_INDEX = REPO / "src" / "chatrelay" / "gateway" / "static" / "index.html"
ARTIFACTS = REPO / "test-artifacts" / "e2e"
# Slow enough that a person (and a test) can see an answer grow and stop it midway.
CHUNK_DELAY = "0.05"
USER_ID = "demo_user"


class ChatServer:
    """A ``chatrelay serve`` that a test can kill and start again on the same port and database."""

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self.port = free_port()
        self.db_url = f"sqlite+aiosqlite:///{tmp}/db.sqlite"
        self.node_id = f"e2e-{self.port}"
        self.current: Server | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {"CHUNK_DELAY": CHUNK_DELAY, "NODE_ID": self.node_id}
        self.current = start_server(self._tmp, env=env, port=self.port, db_url=self.db_url)

    def kill(self) -> None:
        """SIGKILL, by pid: no draining, no goodbye frames (a crash)."""
        assert self.current is not None
        process = self.current.process
        process.signal(9)
        process.popen.wait(seconds(10))

    def stop(self) -> None:
        if self.current is not None:
            self.current.process.stop(seconds(10))

    def history(self, session_id: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.url}/api/history/{session_id}",
            params={"user_id": USER_ID},
            timeout=seconds(10),
        )
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    def log(self) -> str:
        return self.current.process.log() if self.current else ""


@pytest.fixture
def chat_server(tmp_path: Path) -> Iterator[ChatServer]:
    if not STATIC_INDEX.is_file():
        pytest.fail("the web UI is not built: run `make web` (cd web && npm ci && npm run build)")
    server = ChatServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)) and not shutil.which(
        CHROMIUM
    ):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (make test does)")
    from playwright import sync_api  # the e2e tests only: pip install 'chatrelay[test]'

    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser profile; every page it opened is photographed at the end."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 760})
    ctx.set_default_timeout(seconds(15) * 1000)
    try:
        yield ctx
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        for index, page in enumerate(ctx.pages):
            suffix = "" if index == 0 else f"-tab{index + 1}"
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}{suffix}.png"))
            except Exception:
                pass
        ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()
