"""One time unit for every test wait, scaled by ``CHATRELAY_TEST_TIMEOUT_SCALE``.

The machine is shared and noisy: waits are generous multiples of this unit,
never assertions about speed.
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("CHATRELAY_TEST_TIMEOUT_SCALE", "1"))
UNIT = 1.0 * SCALE  # seconds


def seconds(multiple: float) -> float:
    """``multiple`` time units, in seconds."""
    return multiple * UNIT
