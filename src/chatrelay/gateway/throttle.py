"""A socket's budget of client frames: a token bucket, and when to give up on the client.

Every client frame costs the gateway a parse and often a store or engine
call (a ``resume`` reads the session log), so one socket may not send more
than a burst and then a steady rate; a client that keeps going after being
told to slow down is closed (docs/operations.md, "Socket limits").
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class FrameThrottle:
    """The frame budget of one socket: a token bucket plus a flood rule.

    Not shared between sockets or tasks (the socket's reader owns it), so it
    needs no lock.
    """

    __slots__ = (
        "_at",
        "_burst",
        "_clock",
        "_flood_limit",
        "_flood_window",
        "_rate",
        "_refused",
        "_tokens",
    )

    def __init__(
        self,
        *,
        burst: float,
        per_second: float,
        flood_limit: int,
        flood_window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = burst
        self._rate = per_second
        self._flood_window = flood_window
        self._clock = clock
        self._tokens = burst
        self._at = clock()
        self._flood_limit = flood_limit
        # When the last ``flood_limit`` frames were refused (made at the first refusal:
        # most sockets never get one).
        self._refused: deque[float] | None = None

    def take(self) -> float:
        """Spend one frame: 0.0 if it may be handled now, else the seconds until it could."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        if self._refused is None:
            self._refused = deque(maxlen=self._flood_limit)
        self._refused.append(now)
        return (1 - self._tokens) / self._rate

    @property
    def flooding(self) -> bool:
        """True once ``flood_limit`` frames were refused within ``flood_window`` seconds."""
        refused = self._refused
        if refused is None:
            return False
        return len(refused) == refused.maxlen and refused[-1] - refused[0] <= self._flood_window
