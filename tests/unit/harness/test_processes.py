"""The process harness on real processes: start, wait until healthy, stop by pid."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from chatrelay.exceptions import MissingBinary, ProcessExited, ProcessNotReady
from chatrelay.harness.processes import (
    Command,
    PortPicker,
    Process,
    find_program,
    free_port,
    port_free,
    spawn,
    stop_all,
)
from chatrelay.harness.readiness import HealthCheck, all_of, http_ok, tcp_accepts, wait_ready
from chatrelay.harness.redis import redis_reply, start_redis
from tests.timing import seconds

PYTHON = sys.executable
# A child that ignores SIGTERM: only SIGKILL ends it. It says so once the handler is set.
STUBBORN = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ignoring SIGTERM', flush=True); time.sleep(600)"
)


def _http_server(tmp_path: Path, port: int) -> list[str]:
    return [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1",
            "--directory", str(tmp_path)]  # fmt: skip


def _logged(process: Process, text: str) -> HealthCheck:
    return lambda: text in process.log()


def test_a_started_http_server_is_healthy_then_stopped_by_pid(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "health").write_text("ok")
    process = spawn(Command(_http_server(tmp_path, port), tmp_path / "http.log", port=port))
    try:
        wait_ready(http_ok(f"http://127.0.0.1:{port}/health"), [process], "GET", seconds(15))
        assert tcp_accepts(port)()
    finally:
        code = process.stop(seconds(10))
    assert code == -signal.SIGTERM
    assert not tcp_accepts(port)()
    assert port_free("127.0.0.1", port)


def test_a_process_that_exits_while_starting_fails_fast_with_its_log(tmp_path: Path) -> None:
    script = "import sys; print('no config file here', flush=True); sys.exit(7)"
    process = spawn(Command([PYTHON, "-c", script], tmp_path / "early.log", name="early"))
    with pytest.raises(ProcessExited) as failed:
        # The check never passes: only the exit can end this wait before its long timeout.
        wait_ready(lambda: False, [process], "nothing", timeout=seconds(600))
    assert "early exited with 7" in str(failed.value)
    assert "no config file here" in str(failed.value)


def test_a_check_that_never_passes_times_out(tmp_path: Path) -> None:
    process = spawn(Command([PYTHON, "-c", "import time; time.sleep(600)"], tmp_path / "idle.log"))
    try:
        with pytest.raises(ProcessNotReady, match="no answer to GET /health from python"):
            wait_ready(http_ok(f"http://127.0.0.1:{free_port()}/health"), [process],
                       "GET /health", timeout=0.3)  # fmt: skip
    finally:
        process.stop(seconds(10))


def test_a_process_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    process = spawn(Command([PYTHON, "-c", STUBBORN], tmp_path / "stubborn.log", name="stubborn"))
    wait_ready(_logged(process, "ignoring SIGTERM"), [process], "its handler", seconds(15))
    assert process.stop(grace=0.2) == -signal.SIGKILL


def test_a_group_stop_reaches_the_grandchildren(tmp_path: Path) -> None:
    port = free_port()
    # A shell that starts the server and waits: stopping the shell alone would orphan it.
    line = " ".join(_http_server(tmp_path, port))
    process = spawn(Command(["sh", "-c", f"{line} & wait"], tmp_path / "sh.log", signal_group=True))
    wait_ready(tcp_accepts(port), [process], "TCP accept", seconds(15))
    process.stop(seconds(10))
    wait_ready(lambda: not tcp_accepts(port)(), [], "the grandchild's end", seconds(10))


def test_stop_all_hurried_skips_the_grace(tmp_path: Path) -> None:
    stubborn = [
        spawn(Command([PYTHON, "-c", STUBBORN], tmp_path / f"stubborn-{i}.log")) for i in range(2)
    ]
    for process in stubborn:
        wait_ready(_logged(process, "ignoring SIGTERM"), [process], "handler", seconds(15))
    stop_all(stubborn, grace=seconds(600), hurry=lambda: True)
    assert [process.exit_code() for process in stubborn] == [-signal.SIGKILL] * 2


def test_a_restart_runs_the_same_command_on_the_same_port_appending_its_log(
    tmp_path: Path,
) -> None:
    port = free_port()
    (tmp_path / "health").write_text("ok")
    first = spawn(Command(_http_server(tmp_path, port), tmp_path / "http.log", port=port))
    wait_ready(http_ok(f"http://127.0.0.1:{port}/health"), [first], "GET", seconds(15))
    first.signal(signal.SIGKILL)
    first.popen.wait(seconds(10))
    before = first.log()
    assert "GET /health" in before
    again = first.restart()
    try:
        assert again.pid != first.pid and again.port == port
        wait_ready(http_ok(f"http://127.0.0.1:{port}/health"), [again], "GET", seconds(15))
    finally:
        again.stop(seconds(10))
    assert again.log().startswith(before) and len(again.log()) > len(before)
    running = spawn(Command([PYTHON, "-c", "import time; time.sleep(600)"], tmp_path / "idle.log"))
    try:
        with pytest.raises(RuntimeError, match="still running"):
            running.restart()
    finally:
        running.stop(seconds(10))


def test_all_of_passes_once_every_check_has_passed() -> None:
    answers = iter([False, True])
    once = all_of([lambda: True, lambda: next(answers)])
    assert not once()
    assert once()


def test_ports_from_one_picker_differ() -> None:
    picker = PortPicker()
    assert len({picker.take() for _ in range(20)}) == 20


def test_a_missing_program_names_its_package() -> None:
    with pytest.raises(MissingBinary) as missing:
        find_program("a-program-that-is-not-there", "some-package", also_in=())
    assert "apt-get install -y some-package" in str(missing.value)


def test_redis_starts_answers_and_stops(tmp_path: Path) -> None:
    process = start_redis(tmp_path, seconds(10))
    try:
        assert process.port is not None
        assert redis_reply(process.port, "SET", "k", "v").startswith(b"+OK")
        assert redis_reply(process.port, "GET", "k") == b"$1\r\nv\r\n"
    finally:
        assert process.stop(seconds(10)) == 0  # redis exits cleanly on SIGTERM
