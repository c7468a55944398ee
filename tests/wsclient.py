"""How the tests open a :class:`~chatrelay.wire_client.WireClient`: with their scaled waits."""

from __future__ import annotations

from chatrelay.wire_client import WireClient
from tests.timing import seconds


async def connect(
    ws_url: str, *, local_addr: tuple[str, int] | None = None, **query: str
) -> WireClient:
    """A socket to ``ws_url`` with ``query``, its ``welcome`` read; each wait ``seconds(10)``."""
    return await WireClient.connect(ws_url, query, local_addr=local_addr, timeout=seconds(10))
