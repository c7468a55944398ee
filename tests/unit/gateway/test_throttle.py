"""``FrameThrottle``: a socket's frame budget, on a clock the test moves."""

from __future__ import annotations

from chatrelay.config import Settings
from chatrelay.gateway.throttle import FrameThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def default_throttle(clock: Clock) -> FrameThrottle:
    settings = Settings()
    return FrameThrottle(
        burst=settings.frame_rate_burst,
        per_second=settings.frame_rate_per_second,
        flood_limit=settings.frame_flood_limit,
        flood_window=settings.frame_flood_window_seconds,
        clock=clock,
    )


def test_finding_4_a_burst_then_the_rate_then_a_wait_that_says_when() -> None:
    clock = Clock()
    throttle = default_throttle(clock)
    assert [throttle.take() for _ in range(20)] == [0.0] * 20
    assert abs(throttle.take() - 0.1) < 1e-9  # one frame's worth at 10 frames/s
    clock.now += 0.1
    assert throttle.take() == 0.0
    assert not throttle.flooding


def test_finding_4_normal_traffic_is_never_limited() -> None:
    # Busier than any UI: five frames a second for ten minutes, and 15 at once every minute.
    clock = Clock()
    throttle = default_throttle(clock)
    for tick in range(3000):
        clock.now += 0.2
        frames = 15 if tick % 300 == 0 else 1
        assert [throttle.take() for _ in range(frames)] == [0.0] * frames


def test_finding_4_fifty_refusals_within_ten_seconds_are_a_flood() -> None:
    clock = Clock()
    throttle = default_throttle(clock)
    for _ in range(20):
        throttle.take()
    for _ in range(49):
        assert throttle.take() > 0
        assert not throttle.flooding
    assert throttle.take() > 0
    assert throttle.flooding


def test_finding_4_refusals_spread_out_are_not_a_flood() -> None:
    clock = Clock()
    throttle = default_throttle(clock)
    refused = 0
    for _ in range(200):
        clock.now += 0.55  # 5.5 frames' worth of tokens; 7 asked: one or two refused
        refused += sum(1 for _ in range(7) if throttle.take() > 0)
        assert not throttle.flooding
    assert refused >= 200
