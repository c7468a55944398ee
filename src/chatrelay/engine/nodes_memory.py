"""The node registry kept in this process (``Nodes`` of ``engine/base.py``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any


class MemoryNodes:
    """Node statuses in a dict, each with its expiry; expired ones are dropped when read."""

    def __init__(self) -> None:
        self._statuses: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}

    async def report(self, kind: str, node_id: str, status: Mapping[str, Any], ttl: float) -> None:
        self._statuses[(kind, node_id)] = (dict(status), time.monotonic() + ttl)

    async def forget(self, kind: str, node_id: str) -> None:
        self._statuses.pop((kind, node_id), None)

    async def statuses(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        for key in [key for key, (_, expiry) in self._statuses.items() if expiry <= now]:
            del self._statuses[key]
        return [status for _, (status, _) in sorted(self._statuses.items())]
