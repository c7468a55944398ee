"""What a new user does: ``make run``, then a WebSocket client on /ws/chat."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from chatrelay.harness.processes import Command, free_port, spawn
from chatrelay.harness.readiness import http_ok, wait_ready
from tests import wsclient
from tests.fixtures.processes import REPO
from tests.timing import seconds


async def test_make_run_serves_a_streamed_answer(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "make-run.log"
    env = {
        **os.environ,
        "CHATRELAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/chatrelay.db",
        "CHATRELAY_MAX_TOKENS": "24",  # the default model may be the real local one
    }
    # Its own process group: make, and the server it starts, stop together.
    make = spawn(
        Command(["make", "run", f"PORT={port}"], log, cwd=REPO, env=env, signal_group=True)
    )
    try:
        wait_ready(http_ok(f"http://127.0.0.1:{port}/health"), [make], "GET /health", seconds(240))
        client = await wsclient.connect(f"ws://127.0.0.1:{port}/ws/chat", user_id="newcomer")
        message_id = await client.chat("Hello! What can you do?")
        turn = await client.follow(message_id, timeout=seconds(60))
        assert turn.complete is not None and turn.complete["status"] == "completed"
        assert turn.text and turn.text == turn.complete["content"]
        await client.close()
        async with httpx.AsyncClient() as http:
            page = await http.get(f"http://127.0.0.1:{port}/")
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        make.stop(seconds(20))
    assert "chatrelay serve" in log.read_text(errors="replace")
    assert f"on http://127.0.0.1:{port}" in log.read_text(errors="replace")
