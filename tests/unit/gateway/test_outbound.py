"""The outbound queue: each offset once and in order, resume ordering, overflow closes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from chatrelay.engine.base import Event
from chatrelay.gateway import close_codes
from chatrelay.gateway.outbound import Outbound
from tests.timing import seconds


def event(offset: int) -> Event:
    return Event(offset, orjson.dumps({"type": "chunk", "offset": offset, "delta": str(offset)}))


async def written(outbound: Outbound) -> list[dict[str, Any]]:
    """Every frame the writer sends, up to the ``reconnect`` queued last (left out)."""
    frames: list[dict[str, Any]] = []

    async def send_text(text: str) -> None:
        frames.append(orjson.loads(text))

    outbound.send_reconnect("end of test")
    async with asyncio.timeout(seconds(5)):
        await outbound.write(send_text)
    assert frames[-1] == {"type": "reconnect", "reason": "end of test"}
    return frames[:-1]


def offsets(frames: list[dict[str, Any]]) -> list[int]:
    return [frame["offset"] for frame in frames]


async def test_each_offset_is_sent_once_and_in_order() -> None:
    outbound = Outbound(maxsize=16)
    for offset in (1, 2, 2, 1, 3):
        outbound.deliver(event(offset))
    assert offsets(await written(outbound)) == [1, 2, 3]


async def test_live_events_held_during_a_replay_follow_it_without_duplicates() -> None:
    outbound = Outbound(maxsize=16)
    outbound.start_at(0)
    outbound.hold()
    outbound.deliver(event(3))  # live, while the log is read
    outbound.deliver(event(4))
    await outbound.replay(0, [event(1), event(2), event(3)])
    outbound.release()
    outbound.deliver(event(5))
    assert offsets(await written(outbound)) == [1, 2, 3, 4, 5]


async def test_a_replay_longer_than_the_queue_waits_for_room() -> None:
    outbound = Outbound(maxsize=2)
    frames: list[dict[str, Any]] = []
    seven_sent = asyncio.Event()

    async def send_text(text: str) -> None:
        frames.append(orjson.loads(text))
        if frames[-1]["offset"] == 7:
            seven_sent.set()

    writer = asyncio.create_task(outbound.write(send_text))
    async with asyncio.timeout(seconds(5)):
        await outbound.replay(0, [event(n) for n in range(1, 8)])
        await seven_sent.wait()
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    assert offsets(frames) == [1, 2, 3, 4, 5, 6, 7]
    assert outbound.close_reason == (close_codes.NORMAL, "")


async def test_a_reset_drops_what_was_held_and_skips_past_it() -> None:
    outbound = Outbound(maxsize=16)
    outbound.hold()
    outbound.deliver(event(5))
    outbound.reset("epoch-2", 7)
    outbound.release()
    outbound.deliver(event(7))  # at or before the reset: not sent again
    outbound.deliver(event(8))
    frames = await written(outbound)
    assert frames[0] == {"type": "reset", "epoch": "epoch-2", "offset": 7}
    assert offsets(frames[1:]) == [8]


async def test_an_overflow_stops_a_blocked_writer_with_the_resume_hint() -> None:
    outbound = Outbound(maxsize=4)
    first_sent = asyncio.Event()
    never = asyncio.Event()

    async def stalled_client(text: str) -> None:
        first_sent.set()
        await never.wait()  # the client stopped reading: the send never completes

    outbound.deliver(event(1))
    writer = asyncio.create_task(outbound.write(stalled_client))
    await first_sent.wait()
    outbound.deliver(event(2))  # counts as not sent: the client has not read 2
    for offset in range(3, 10):
        outbound.deliver(event(offset))
    async with asyncio.timeout(seconds(5)):
        await writer  # returns, not cancelled: the overflow is an ordinary end
    assert not writer.cancelled()
    code, reason = outbound.close_reason
    assert code == close_codes.TOO_SLOW == 4408
    assert reason == "too slow; reconnect and resume from offset 0"


async def test_an_overflow_while_held_closes_before_the_writer_starts() -> None:
    outbound = Outbound(maxsize=2)
    outbound.hold()
    for offset in range(1, 5):
        outbound.deliver(event(offset))

    async def send_text(text: str) -> None:
        raise AssertionError("nothing may be sent after an overflow")

    await outbound.write(send_text)
    assert outbound.close_reason[0] == close_codes.TOO_SLOW


async def test_the_resume_hint_names_the_last_offset_written() -> None:
    outbound = Outbound(maxsize=4)
    blocked = asyncio.Event()

    async def stalls_on_three(text: str) -> None:
        if orjson.loads(text)["offset"] == 3:
            blocked.set()
            await asyncio.Event().wait()

    for offset in (1, 2, 3):
        outbound.deliver(event(offset))
    writer = asyncio.create_task(outbound.write(stalls_on_three))
    await blocked.wait()
    for offset in range(4, 10):
        outbound.deliver(event(offset))
    async with asyncio.timeout(seconds(5)):
        await writer
    assert outbound.close_reason == (
        close_codes.TOO_SLOW,
        "too slow; reconnect and resume from offset 2",
    )


async def test_a_cancel_from_outside_still_cancels_the_writer() -> None:
    outbound = Outbound(maxsize=4)
    sent = asyncio.Event()

    async def send_text(text: str) -> None:
        sent.set()

    outbound.deliver(event(1))
    writer = asyncio.create_task(outbound.write(send_text))
    await sent.wait()  # the writer sent 1 and now waits on the empty queue
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    assert outbound.close_reason == (close_codes.NORMAL, "")


async def test_finding_4_a_resume_to_offsets_already_sent_replays_nothing_again() -> None:
    outbound = Outbound(maxsize=64)
    outbound.start_at(4)  # the welcome said 4
    log = [event(offset) for offset in range(1, 7)]
    await outbound.replay(2, log[:4])  # the client held 2: 3 and 4 come
    outbound.deliver(event(5))
    for _ in range(10):  # asking again sends only what was never sent: nothing, then 6
        await outbound.replay(2, log[:5])
    await outbound.replay(2, log)
    assert offsets(await written(outbound)) == [3, 4, 5, 6]


async def test_live_events_that_overtook_a_resume_are_sent_again_after_its_hole() -> None:
    """A reconnecting client held 2; it was welcomed at 4 and events 5 and 6 went out live
    before its resume arrived. PROTOCOL promises every event after 2 in order: 3 and 4,
    then 5 and 6 again (the client dropped them, they came ahead of 3), then 7. Once."""
    outbound = Outbound(maxsize=64)
    outbound.start_at(4)
    outbound.deliver(event(5))
    outbound.deliver(event(6))
    log = [event(offset) for offset in range(1, 8)]
    await outbound.replay(2, log)
    for _ in range(5):  # asking again sends nothing again
        await outbound.replay(2, log)
    await outbound.replay(1, log)  # only 2 was never sent
    assert offsets(await written(outbound)) == [5, 6, 3, 4, 5, 6, 7, 2]


async def test_a_resume_from_the_welcome_offset_sends_nothing_twice() -> None:
    outbound = Outbound(maxsize=64)
    outbound.start_at(4)
    outbound.deliver(event(5))
    await outbound.replay(4, [event(offset) for offset in range(1, 7)])
    assert offsets(await written(outbound)) == [5, 6]


async def test_finding_9_only_live_events_count_toward_chunk_latency() -> None:
    def observed() -> float:
        return REGISTRY.get_sample_value("chatrelay_chunk_latency_seconds_count") or 0.0

    def stamped(offset: int) -> Event:
        chunk = {"type": "chunk", "offset": offset, "delta": "x", "ts": time.time()}
        return Event(offset, orjson.dumps(chunk))

    outbound = Outbound(maxsize=16)
    before = observed()
    await outbound.replay(0, [stamped(1), stamped(2)])  # a resume
    outbound.deliver(stamped(3), live=False)  # repaired from the log by the relay
    outbound.deliver(stamped(4))  # live
    assert offsets(await written(outbound)) == [1, 2, 3, 4]
    assert observed() == before + 1
