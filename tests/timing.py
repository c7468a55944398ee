"""One time unit for every test wait, scaled by ``CHATRELAY_TEST_TIMEOUT_SCALE``.

The machine is shared and noisy: waits are generous multiples of this unit,
never assertions about speed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

SCALE = float(os.environ.get("CHATRELAY_TEST_TIMEOUT_SCALE", "1"))
UNIT = 1.0 * SCALE  # seconds
# How often ``wait_until`` looks again: often enough to add little to a test's time.
POLL_SECONDS = 0.02


def seconds(multiple: float) -> float:
    """``multiple`` time units, in seconds."""
    return multiple * UNIT


async def wait_until(condition: Callable[[], bool], what: str, timeout: float | None = None) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` (10 units)."""
    limit = timeout or seconds(10)
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {limit:.1f}s")
        await asyncio.sleep(POLL_SECONDS)
