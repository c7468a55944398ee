"""``chatrelay cluster down``: stop the cluster of a run folder from another terminal.

The launcher owns its children: ``down`` sends it SIGTERM (as Ctrl-C would),
the launcher stops every tier by pid in order, and ``down`` waits until the
launcher and every pid ``cluster.json`` lists have ended.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from chatrelay.cluster.manifest import Manifest, manifest_or_complaint, pid_alive

# How often ``down`` looks whether everything ended.
POLL_SECONDS = 0.2


def _still_running(manifest: Manifest) -> list[str]:
    return [
        f"{record.node_id} (pid {record.pid})"
        for record in manifest.processes
        if record.pid is not None and pid_alive(record.pid)
    ]


def stop_cluster(run_dir: Path, timeout: float) -> tuple[str, int]:
    """Stop the cluster of ``run_dir``; what happened, and the exit code.

    0: everything it listed has ended (or had already); 1: something still runs
    after ``timeout`` seconds, or outlived a launcher that died; 2: no readable
    ``cluster.json`` there.
    """
    manifest = manifest_or_complaint(run_dir)
    if isinstance(manifest, str):
        return manifest, 2
    launcher = manifest.launcher_pid
    if not pid_alive(launcher):
        leftovers = _still_running(manifest)
        if leftovers:
            names = ", ".join(leftovers)
            return f"the launcher (pid {launcher}) is gone but these still run: {names}", 1
        return f"the cluster of {run_dir} is not running", 0
    os.kill(launcher, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        manifest = Manifest.read(run_dir)  # the launcher rewrites it as it stops
        if not pid_alive(launcher) and not _still_running(manifest):
            count = sum(record.pid is not None for record in manifest.processes)
            return (
                f"stopped the cluster of {run_dir}: launcher pid {launcher}, {count} processes",
                0,
            )
        time.sleep(POLL_SECONDS)
    names = ", ".join(
        [f"launcher (pid {launcher})"] * pid_alive(launcher) + _still_running(manifest)
    )
    return f"still running after {timeout:.0f}s: {names}", 1
