"""Periodic: runs its job until closed, and closing it never swallows the closer's cancel."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.periodic import Periodic
from tests.timing import seconds


async def test_the_job_runs_again_and_again_until_closed() -> None:
    runs = 0
    third = asyncio.Event()

    async def job() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            third.set()

    periodic = Periodic(0.001, job, "test-job")
    periodic.start()
    async with asyncio.timeout(seconds(5)):
        await third.wait()
    await periodic.aclose()
    stopped_at = runs
    await asyncio.sleep(0.01)  # ten intervals pass: a job still running would show it
    assert runs == stopped_at
    await periodic.aclose()  # idempotent


async def test_a_cancel_of_the_closer_is_not_swallowed() -> None:
    running, stopping, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow_to_stop() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopping.set()
            await release.wait()  # takes its time to stop

    periodic = Periodic(0, slow_to_stop, "slow-to-stop")
    periodic.start()
    async with asyncio.timeout(seconds(5)):
        await running.wait()
        closer = asyncio.create_task(periodic.aclose())
        await stopping.wait()
        closer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closer
    release.set()
