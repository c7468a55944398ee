"""Relays a session's events from the engine to this process's sockets.

One engine subscription per session that this process holds sockets for,
shared by all of them, started with the first socket and stopped with the
last. Events leave in offset order without gaps: live delivery is
at-most-once, so when an offset jumps, or the engine's live connection was
re-established, the relay fills the hole from the session's log before
passing anything on. When the log cannot fill it (trimmed, or lost with a
new epoch) the sinks are told to reset.

The relay is also the gateway's one reader of session logs (``position``,
``history``), and it owns its pump tasks: ``aclose`` cancels and awaits
every one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from chatrelay import metrics
from chatrelay.engine.base import Broker, Event, History
from chatrelay.exceptions import EngineError

logger = logging.getLogger(__name__)

# How long a failed subscription waits before trying again (doubles up to the cap).
RETRY_FIRST_SECONDS = 0.1
RETRY_CAP_SECONDS = 5.0
# A socket waits this long for its session's subscription before giving up.
ATTACH_TIMEOUT_SECONDS = 5.0


class Sink(Protocol):
    """Where the relay hands events: a socket's send queue. Must not block."""

    def deliver(self, event: Event, *, live: bool = True) -> None:
        """The next event of the session (offsets increase by one); ``live`` is False
        for an event repaired from the log."""
        ...

    def reset(self, epoch: str, latest: int) -> None:
        """Events up to ``latest`` could not be delivered: the log lost them."""
        ...


@dataclass(slots=True)
class _Channel:
    session_id: str
    sinks: set[Sink] = field(default_factory=set)
    epoch: str = ""
    last: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    #: The repair a re-established live connection started, while it runs.
    repair: asyncio.Task[None] | None = None
    repair_again: bool = False  # another reconnect came during that repair

    def stop(self) -> list[asyncio.Task[None]]:
        """Cancel the pump and any repair; the tasks to await."""
        tasks = [task for task in (self.task, self.repair) if task is not None]
        for task in tasks:
            task.cancel()
        return tasks


class Relay:
    """Fans a session's events out to the sinks attached to it."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._channels: dict[str, _Channel] = {}
        self.gaps_repaired = 0
        self.resets = 0

    @property
    def session_count(self) -> int:
        return len(self._channels)

    async def position(self, session_id: str) -> tuple[str, int]:
        """The session log's epoch and latest offset; raises ``EngineError``."""
        return await self._broker.position(session_id)

    async def history(self, session_id: str, since: int) -> History:
        """The session log after ``since``; raises ``EngineError``."""
        return await self._broker.history(session_id, since)

    @asynccontextmanager
    async def attach(self, session_id: str, sink: Sink) -> AsyncIterator[tuple[str, int]]:
        """Deliver the session's live events to ``sink`` while the context is open.

        Yields the log's epoch and the offset after which every event reaches
        the sink (what the sink got up to it is the caller's to drop; events
        already in the log are the caller's to read from history): the
        position the session's subscription read when it started, moved on by
        every event relayed since, so a socket joining a relayed session costs
        no engine round trip. Raises ``EngineError`` when the engine takes no
        subscription in time.
        """
        channel = self._channels.get(session_id)
        if channel is None:
            channel = self._channels[session_id] = _Channel(session_id)
            metrics.RELAYED_SESSIONS.inc()
            channel.task = asyncio.create_task(self._pump(channel), name=f"relay-{session_id}")
        channel.sinks.add(sink)
        try:
            try:
                async with asyncio.timeout(ATTACH_TIMEOUT_SECONDS):
                    await channel.ready.wait()
            except TimeoutError as exc:
                raise EngineError("the engine did not accept a subscription in time") from exc
            yield channel.epoch, channel.last
        finally:
            channel.sinks.discard(sink)
            if not channel.sinks and self._channels.get(session_id) is channel:
                del self._channels[session_id]
                metrics.RELAYED_SESSIONS.dec()
                # Not suppress(CancelledError): that would also swallow a cancel of this task.
                await asyncio.wait(channel.stop())

    async def aclose(self) -> None:
        """Stop every pump (the sockets are gone by now: the registry drained them)."""
        channels = list(self._channels.values())
        self._channels.clear()
        tasks = [task for channel in channels for task in channel.stop()]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self, channel: _Channel) -> None:
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                async with self._broker.subscribe(channel.session_id) as subscription:
                    subscription.on_reconnect = lambda: self._reconnected(channel)
                    epoch, latest = await self.position(channel.session_id)
                    if channel.ready.is_set():
                        await self._repair(channel, epoch, latest)  # after a failure
                    else:
                        channel.epoch, channel.last = epoch, latest
                        channel.ready.set()
                    delay = RETRY_FIRST_SECONDS
                    seen = 0  # within one log, a subscription's offsets only grow
                    async for event in subscription:
                        if event.offset <= seen or (not seen and event.offset <= channel.last):
                            # Offsets went back: the log may have been lost and
                            # restarted (Redis flushed, keys evicted) under us.
                            await self._repair(channel, *await self.position(channel.session_id))
                        seen = event.offset
                        await self._forward(channel, event)
            except EngineError as exc:
                metrics.ENGINE_ERRORS.labels("relay").inc()
                logger.warning("relay of %s lost its subscription: %s", channel.session_id, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_CAP_SECONDS)

    def _reconnected(self, channel: _Channel) -> None:
        """The live connection came back: fill the hole it left, even if nothing follows."""
        if channel.repair is not None and not channel.repair.done():
            channel.repair_again = True  # it may have read the position before this gap
            return
        channel.repair = asyncio.create_task(
            self._repair_reconnected(channel), name=f"relay-repair-{channel.session_id}"
        )

    async def _repair_reconnected(self, channel: _Channel) -> None:
        await channel.ready.wait()  # a reconnect before the first position: nothing to fill
        while True:
            channel.repair_again = False
            try:
                epoch, latest = await self.position(channel.session_id)
                await self._repair(channel, epoch, latest)
            except EngineError as exc:
                logger.warning("relay of %s could not repair: %s", channel.session_id, exc)
            if not channel.repair_again:
                return

    async def _forward(self, channel: _Channel, event: Event) -> None:
        if event.offset <= channel.last:
            return
        if event.offset > channel.last + 1:
            await self._catch_up(channel, event.offset - 1)
        if event.offset > channel.last:  # the catch-up may have delivered it
            self._deliver(channel, event)

    async def _repair(self, channel: _Channel, epoch: str, latest: int) -> None:
        if epoch != channel.epoch:
            self._reset(channel, epoch, latest)
        else:
            await self._catch_up(channel, latest)

    async def _catch_up(self, channel: _Channel, until: int) -> None:
        """Deliver events (channel.last, until] from the log, or reset if it lost them."""
        if until <= channel.last:
            return
        history = await self.history(channel.session_id, channel.last)
        self.gaps_repaired += 1
        metrics.GAP_REPAIRS.inc()
        if history.epoch != channel.epoch or not history.complete:
            self._reset(channel, history.epoch, history.latest)
            return
        for event in history.events:
            if channel.last < event.offset <= until:
                self._deliver(channel, event, live=False)

    def _deliver(self, channel: _Channel, event: Event, *, live: bool = True) -> None:
        channel.last = event.offset
        for sink in tuple(channel.sinks):
            sink.deliver(event, live=live)

    def _reset(self, channel: _Channel, epoch: str, latest: int) -> None:
        logger.warning(
            "session log lost events; sockets reset", extra={"session_id": channel.session_id}
        )
        self.resets += 1
        metrics.LOG_RESETS.inc()
        channel.epoch, channel.last = epoch, latest
        for sink in tuple(channel.sinks):
            sink.reset(epoch, latest)
