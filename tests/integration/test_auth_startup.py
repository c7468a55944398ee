"""``chatrelay serve`` / ``gateway`` refuse dev auth off loopback unless explicitly allowed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from chatrelay.harness.processes import Command, free_port, spawn
from chatrelay.harness.readiness import http_ok, wait_ready
from tests.fixtures.processes import CHATRELAY, SERVER_START_TIMEOUT
from tests.timing import seconds


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CHATRELAY_AUTH_MODE", "CHATRELAY_ALLOW_DEV_AUTH")
    }
    return env | {
        "CHATRELAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/chatrelay.db",
        "CHATRELAY_MODEL": "simulated",
        **extra,
    }


@pytest.mark.parametrize("role", ["serve", "gateway"])
def test_dev_auth_on_every_address_refuses_to_start(tmp_path: Path, role: str) -> None:
    result = subprocess.run(
        [*CHATRELAY, role, "--host", "0.0.0.0", "--port", str(free_port())],
        env=_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=seconds(30),
    )
    assert result.returncode == 2
    assert "CHATRELAY_AUTH_MODE=dev" in result.stderr
    assert "CHATRELAY_ALLOW_DEV_AUTH=1" in result.stderr


def test_dev_auth_starts_off_loopback_when_allowed(tmp_path: Path) -> None:
    port = free_port()
    process = spawn(
        Command(
            [*CHATRELAY, "serve", "--host", "0.0.0.0", "--port", str(port)],
            tmp_path / "server.log",
            name="chatrelay serve 0.0.0.0",
            env=_env(tmp_path, CHATRELAY_ALLOW_DEV_AUTH="1"),
            cwd=tmp_path,
            port=port,
        )
    )
    try:
        wait_ready(
            http_ok(f"http://127.0.0.1:{port}/health"),
            [process],
            "GET /health",
            SERVER_START_TIMEOUT,
        )
    finally:
        process.stop()
