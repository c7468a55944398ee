"""A job run every few seconds by one background task that its owner starts and stops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Periodic:
    """Runs ``job`` every ``interval`` seconds, from ``start`` until ``aclose``.

    The job handles its own errors: one that escapes ends the task.
    """

    def __init__(self, interval: float, job: Callable[[], Awaitable[None]], name: str) -> None:
        self._interval = interval
        self._job = job
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task (once); the first run is one interval from now."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def aclose(self) -> None:
        """Cancel the task and wait until it ended; idempotent.

        ``asyncio.wait`` rather than awaiting under ``suppress(CancelledError)``:
        that would also swallow a cancel of the caller.
        """
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._job()
