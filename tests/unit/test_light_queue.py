"""LightQueue: asyncio.Queue's order, bounds, waiting and cancelling, with one deque."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.light_queue import LightQueue


async def test_items_come_out_in_order_and_a_getter_waits_for_the_next() -> None:
    queue: LightQueue[int] = LightQueue(10)
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert [await queue.get(), queue.get_nowait()] == [1, 2]
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    queue.put_nowait(3)
    assert await waiting == 3
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_a_full_queue_refuses_put_nowait_and_makes_put_wait_for_room() -> None:
    queue: LightQueue[str] = LightQueue(2)
    queue.put_nowait("a")
    queue.put_nowait("b")
    assert queue.full()
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait("c")
    putting = [asyncio.create_task(queue.put(x)) for x in ("c", "d")]
    await asyncio.sleep(0)
    assert not any(task.done() for task in putting)
    assert queue.get_nowait() == "a"
    await asyncio.sleep(0)
    assert putting[0].done() and not putting[1].done()
    assert [queue.get_nowait(), await queue.get()] == ["b", "c"]
    await putting[1]
    assert queue.get_nowait() == "d"


async def test_cancelled_waiters_leave_nothing_behind() -> None:
    queue: LightQueue[int] = LightQueue(1)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    getter.cancel()
    await asyncio.gather(getter, return_exceptions=True)
    queue.put_nowait(1)  # no stale getter to wake: the next get takes it
    assert await queue.get() == 1
    queue.put_nowait(2)
    first, second = asyncio.create_task(queue.put(3)), asyncio.create_task(queue.put(4))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert queue.get_nowait() == 2
    await second  # the room went to the putter still waiting
    assert queue.get_nowait() == 4


async def test_one_consumer_at_a_time() -> None:
    queue: LightQueue[int] = LightQueue(1)
    first = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one consumer"):
        await queue.get()
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
