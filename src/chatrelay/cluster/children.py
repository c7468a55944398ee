"""The processes a launcher starts, and stopping them by pid: SIGTERM, then SIGKILL."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chatrelay.cluster.manifest import ProcessRecord

logger = logging.getLogger(__name__)

# How often a wait checks on its processes.
POLL_SECONDS = 0.05


@dataclass
class Child:
    """A process the launcher started, with where to reach it and where it logs."""

    role: str
    node_id: str
    url: str
    health_url: str | None
    log_path: Path
    popen: subprocess.Popen[bytes]
    reported_exit: bool = False
    # How it was started, so ``restart`` can start it again the same way.
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    restarts: int = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exit_code(self) -> int | None:
        """None while running; the exit code (negative: the signal) once it ended."""
        return self.popen.poll()

    def record(self) -> ProcessRecord:
        return ProcessRecord(self.role, self.node_id, self.pid, self.url, str(self.log_path))

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(
    role: str,
    node_id: str,
    args: list[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    url: str,
    health_url: str | None,
    cwd: Path,
) -> Child:
    """Start ``args`` with its output in ``log_path``.

    The child gets its own session, so a Ctrl-C in the terminal reaches only
    the launcher, which then stops the children in order; and, on Linux, it
    receives SIGTERM if the launcher dies without stopping it.
    """
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            # Safe here: the launcher runs no threads that could hold a lock at fork.
            preexec_fn=_die_with_parent(),  # noqa: PLW1509
        )
    logger.info("started %s %s pid %d: %s", role, node_id, popen.pid, " ".join(args))
    return Child(role, node_id, url, health_url, log_path, popen,
                 args=list(args), env=dict(env), cwd=cwd)


def restart(child: Child) -> Child:
    """Start a child that ended again: same command, environment, port and log (appended)."""
    if child.exit_code() is None:
        raise RuntimeError(f"{child.node_id} (pid {child.pid}) is still running")
    assert child.cwd is not None
    again = spawn(child.role, child.node_id, child.args, env=child.env, log_path=child.log_path,
                  url=child.url, health_url=child.health_url, cwd=child.cwd)
    again.restarts = child.restarts + 1
    return again


def _die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def set_death_signal() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return set_death_signal


def stop(children: Iterable[Child], grace: float, hurry: Callable[[], bool] = lambda: False) -> None:
    """SIGTERM every running child, wait up to ``grace`` seconds, SIGKILL what is left.

    ``hurry`` returning true (a second Ctrl-C) cuts the grace short. Every
    child is reaped before this returns.
    """
    running = [child for child in children if child.exit_code() is None]
    for child in running:
        _signal(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not hurry():
        running = [child for child in running if child.exit_code() is None]
        if not running:
            return
        time.sleep(POLL_SECONDS)
    for child in running:
        if child.exit_code() is None:
            logger.warning("%s %s pid %d ignored SIGTERM for %.0fs: SIGKILL",
                           child.role, child.node_id, child.pid, grace)
            _signal(child, signal.SIGKILL)
    for child in running:
        child.popen.wait()


def _signal(child: Child, signum: int) -> None:
    try:
        os.kill(child.pid, signum)
    except ProcessLookupError:
        pass
