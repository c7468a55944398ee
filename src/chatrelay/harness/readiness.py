"""Waiting until a started process answers: a health check polled within a timeout.

A check is any ``() -> bool`` that never raises (a connect, a GET, a PING).
:func:`wait_ready` fails fast when a watched process exits while it waits,
quoting the end of that process's log, so a crash at start is a readable
error at once instead of a timeout later.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Sequence

import httpx

from chatrelay.exceptions import ProcessExited, ProcessNotReady
from chatrelay.harness.processes import LOOPBACK, Process

# How often a wait probes its check and looks at its processes.
POLL_SECONDS = 0.05
# One probe (a connect, a GET) may take this long.
PROBE_TIMEOUT_SECONDS = 1.0

HealthCheck = Callable[[], bool]


def wait_ready(
    check: HealthCheck,
    watched: Sequence[Process],
    what: str,
    timeout: float,
    *,
    interval: float = POLL_SECONDS,
    on_tick: Callable[[], None] | None = None,
) -> None:
    """Poll ``check`` until it returns true.

    Raises :class:`ProcessExited` (with the log's tail) as soon as a ``watched``
    process ends, and :class:`ProcessNotReady` after ``timeout`` seconds.
    ``on_tick`` runs before every probe; it may raise to abandon the wait.
    """
    deadline = time.monotonic() + timeout
    while True:
        if on_tick is not None:
            on_tick()
        for process in watched:
            code = process.exit_code()
            if code is not None:
                raise ProcessExited(
                    f"{process.name} exited with {code} while starting; "
                    f"the end of {process.log_path}:\n{process.log_tail()}"
                )
        if check():
            return
        if time.monotonic() > deadline:
            names = ", ".join(process.name for process in watched)
            source = f" from {names}" if names else ""
            raise ProcessNotReady(f"no answer to {what}{source} within {timeout:.0f}s")
        time.sleep(interval)


def all_of(checks: Iterable[HealthCheck]) -> HealthCheck:
    """A check that passes once each of ``checks`` has passed (each stops being probed then)."""
    pending = list(checks)

    def check() -> bool:
        pending[:] = [one for one in pending if not one()]
        return not pending

    return check


def tcp_accepts(port: int, host: str = LOOPBACK) -> HealthCheck:
    """A check: something accepts TCP connections on ``host:port``."""

    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_SECONDS):
                return True
        except OSError:
            return False

    return check


def http_ok(url: str) -> HealthCheck:
    """A check: ``GET url`` answers 200."""

    def check() -> bool:
        try:
            return httpx.get(url, timeout=PROBE_TIMEOUT_SECONDS).status_code == 200
        except httpx.HTTPError:
            return False

    return check
