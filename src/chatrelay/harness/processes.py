"""Starting a binary with its output in a log file, and stopping it by pid.

:func:`spawn` runs a :class:`Command` (argv, environment, working folder,
log file) and returns a :class:`Process`; :meth:`Process.stop` and :func:`stop_all` send the
stop signal (SIGTERM), wait a grace period, then SIGKILL, to the whole process
group for a process started with ``signal_group=True``. Also free loopback
ports (:func:`free_port`, :class:`PortPicker`) and :func:`find_program`, which
names the Debian package to install when a binary is missing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatrelay.exceptions import MissingBinary

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# How often a stop looks whether its processes ended.
POLL_SECONDS = 0.05
# SIGTERM, then SIGKILL after this long, unless the caller says otherwise.
STOP_GRACE_SECONDS = 10.0
# Lines of a log quoted when a process fails to start.
LOG_TAIL_LINES = 40
# Debian puts nginx (and postgres tools) in /usr/sbin, which a non-root PATH often lacks.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin")


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PortPicker:
    """Free loopback ports, never the same one twice from one picker."""

    def __init__(self) -> None:
        self._taken: set[int] = set()

    def take(self) -> int:
        """A free port this picker has not handed out before."""
        while (port := free_port()) in self._taken:
            pass
        self._taken.add(port)
        return port


def port_free(host: str, port: int) -> bool:
    """Whether a listener could bind ``host:port`` now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def find_program(program: str, package: str, also_in: Sequence[str] = SBIN_DIRS) -> Path:
    """``program`` on PATH or in ``also_in``; raises :class:`MissingBinary` naming ``package``."""
    found = shutil.which(program)
    if found:
        return Path(found)
    for directory in also_in:
        candidate = Path(directory) / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise MissingBinary(program, package)


@dataclass(frozen=True)
class Command:
    """How a process is started: enough to start it again the same way (:func:`spawn`).

    ``env`` is the whole environment (None: ours). ``new_session`` keeps a
    terminal's Ctrl-C from reaching the child; ``signal_group`` also sends our
    signals to everything it started (implies a new session). ``die_with_parent``
    (Linux) delivers SIGTERM to the child if we die without stopping it.
    ``user``/``group`` run it as another user (we must be root). ``name``
    defaults to the program's.
    """

    args: Sequence[str]
    log_path: Path
    name: str = ""
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    port: int | None = None
    new_session: bool = False
    signal_group: bool = False
    die_with_parent: bool = False
    stop_signal: int = signal.SIGTERM
    user: int | None = None
    group: int | None = None

    def __post_init__(self) -> None:
        # Copies, so a caller changing its list later cannot change a restart.
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "env", None if self.env is None else dict(self.env))
        object.__setattr__(self, "name", self.name or Path(self.args[0]).name)
        object.__setattr__(self, "new_session", self.new_session or self.signal_group)


@dataclass(frozen=True)
class Process:
    """A child we started: how (``command``), and ``popen`` to reach it by pid."""

    command: Command
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def name(self) -> str:
        return self.command.name

    @property
    def log_path(self) -> Path:
        return self.command.log_path

    @property
    def port(self) -> int | None:
        return self.command.port

    def exit_code(self) -> int | None:
        """None while running; the exit code (negative: the signal) once it ended."""
        return self.popen.poll()

    def log(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the log, for failure messages."""
        return "\n".join(self.log().splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        """Send ``signum`` (to the group if started so) unless the process already ended."""
        if self.popen.poll() is not None:
            return
        try:
            if self.command.signal_group:
                os.killpg(self.pid, signum)
            else:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> int | None:
        """Stop it (see :func:`stop_all`) and return its exit code."""
        stop_all([self], grace)
        return self.popen.returncode

    def restart(self) -> Process:
        """Start the same command again (same port, log appended); it must have ended."""
        if self.exit_code() is None:
            raise RuntimeError(f"{self.name} (pid {self.pid}) is still running")
        return spawn(self.command, append=True)


def spawn(command: Command, append: bool = False) -> Process:
    """Start ``command`` with stdout and stderr in its log; it does not wait for readiness.

    ``append`` keeps what the log file already holds.
    """
    with command.log_path.open("ab" if append else "wb") as log:
        popen = subprocess.Popen(
            command.args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=command.env,
            cwd=command.cwd,
            start_new_session=command.new_session,
            # Safe: the callers that ask for it run no threads that could hold a lock at fork.
            preexec_fn=_set_death_signal if command.die_with_parent else None,
            user=command.user,
            group=command.group,
            extra_groups=None if command.user is None else [],
        )
    logger.info("started %s pid %d: %s", command.name, popen.pid, " ".join(command.args))
    return Process(command, popen)


def _set_death_signal() -> None:
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def stop_all(
    processes: Iterable[Process], grace: float, hurry: Callable[[], bool] = lambda: False
) -> None:
    """Send each running process its stop signal, wait up to ``grace`` seconds, SIGKILL the rest.

    ``hurry`` returning true (a second Ctrl-C) cuts the grace short. Every
    process is reaped before this returns.
    """
    running = [process for process in processes if process.exit_code() is None]
    for process in running:
        process.signal(process.command.stop_signal)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not hurry():
        running = [process for process in running if process.exit_code() is None]
        if not running:
            return
        time.sleep(POLL_SECONDS)
    for process in running:
        if process.exit_code() is None:
            logger.warning(
                "%s pid %d ignored %s for %.0fs: SIGKILL",
                process.name,
                process.pid,
                signal.Signals(process.command.stop_signal).name,
                grace,
            )
            process.signal(signal.SIGKILL)
    for process in running:
        process.popen.wait()
