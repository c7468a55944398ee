"""One time unit for every test wait, scaled by ``CHATRELAY_TEST_TIMEOUT_SCALE``.

The machine is shared and noisy: waits are generous multiples of this unit,
never assertions about speed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

SCALE = float(os.environ.get("CHATRELAY_TEST_TIMEOUT_SCALE", "1"))
UNIT = 1.0 * SCALE  # seconds
# How often ``wait_until`` looks again: often enough to add little to a test's time.
POLL_SECONDS = 0.02


def seconds(multiple: float) -> float:
    """``multiple`` time units, in seconds."""
    return multiple * UNIT


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], what: str, timeout: float | None = None
) -> None:
    """Poll ``condition`` (plain or async) until it holds; fail naming ``what`` after
    ``timeout`` (10 units by default). For what has no event to await: a log line, a
    stored status, a count kept by another task."""
    limit = timeout or seconds(10)
    deadline = time.monotonic() + limit
    while True:
        held = condition()
        if held if isinstance(held, bool) else await held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {limit:.1f}s")
        await asyncio.sleep(POLL_SECONDS)
