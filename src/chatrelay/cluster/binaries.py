"""Finding the system programs a local cluster needs, or saying what to install."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class MissingBinary(RuntimeError):
    """A program the cluster needs is not installed; ``package`` is the Debian package."""

    def __init__(self, program: str, package: str) -> None:
        self.program = program
        self.package = package
        super().__init__(
            f"{program} not found on PATH (nor in /usr/sbin): "
            f"install the Debian package {package!r}: sudo apt-get install -y {package}"
        )


# Debian puts nginx in /usr/sbin, which a non-root PATH often lacks.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin")


def find(program: str, package: str, also_in: tuple[str, ...] = SBIN_DIRS) -> Path:
    """``program`` on PATH or in ``also_in``; raises :class:`MissingBinary` naming ``package``."""
    found = shutil.which(program)
    if found:
        return Path(found)
    for directory in also_in:
        candidate = Path(directory) / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise MissingBinary(program, package)


def redis_server() -> Path:
    return find("redis-server", "redis-server")


def nginx() -> Path:
    return find("nginx", "nginx")
