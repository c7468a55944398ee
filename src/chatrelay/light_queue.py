"""A bounded FIFO for one consumer task, lighter than ``asyncio.Queue``.

``asyncio.Queue`` keeps three deques and an ``Event`` (one more deque), about
3 KiB even when empty, and a gateway holds two queues for every idle socket
(its send queue, and its session's subscription). This one keeps one deque,
and a future only while its consumer (or a producer) waits. Same calls as
``asyncio.Queue`` where the two overlap, raising the same ``QueueFull`` and
``QueueEmpty``; one consumer at a time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class LightQueue(Generic[T]):
    """A FIFO of at most ``maxsize`` items, for one consumer task at a time."""

    __slots__ = ("_getter", "_items", "_putters", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._getter: asyncio.Future[None] | None = None
        self._putters: deque[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    def put_nowait(self, item: T) -> None:
        """Append ``item``; raises ``asyncio.QueueFull`` when the queue is full."""
        if len(self._items) >= self.maxsize:
            raise asyncio.QueueFull
        self._items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    async def put(self, item: T) -> None:
        """Append ``item``, waiting for room first."""
        while len(self._items) >= self.maxsize:
            if self._putters is None:
                self._putters = deque()
            putter = asyncio.get_running_loop().create_future()
            self._putters.append(putter)
            try:
                await putter
            except BaseException:
                if putter in self._putters:
                    self._putters.remove(putter)
                elif len(self._items) < self.maxsize:
                    self._wake_putter()  # it was woken for a room it will not take
                raise
        self.put_nowait(item)

    def _wake_putter(self) -> None:
        putters = self._putters
        while putters:
            putter = putters.popleft()
            if not putter.done():
                putter.set_result(None)
                return

    def get_nowait(self) -> T:
        """The oldest item; raises ``asyncio.QueueEmpty`` when there is none."""
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        self._wake_putter()
        return item

    async def get(self) -> T:
        """The oldest item, waiting for one (one consumer at a time)."""
        while not self._items:
            if self._getter is not None:
                raise RuntimeError("LightQueue has one consumer at a time")
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        return self.get_nowait()
