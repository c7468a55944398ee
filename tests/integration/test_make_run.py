"""What a new user does: ``make run``, then a WebSocket client on /ws/chat."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests import wsclient
from tests.fixtures.processes import REPO, free_port, wait_http_ok
from tests.timing import seconds


async def test_make_run_serves_a_streamed_answer(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "make-run.log"
    env = {
        **os.environ,
        "CHATRELAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/chatrelay.db",
        "CHATRELAY_MAX_TOKENS": "24",  # the default model may be the real local one
    }
    with log.open("wb") as out:
        # Its own process group: make, and the server it starts, stop together.
        make = subprocess.Popen(
            ["make", "run", f"PORT={port}"], cwd=REPO, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", timeout=seconds(240))
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
        os.killpg(make.pid, signal.SIGTERM)
        try:
            make.wait(seconds(20))
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
    assert "chatrelay serve" in log.read_text(errors="replace")
    assert f"on http://127.0.0.1:{port}" in log.read_text(errors="replace")
