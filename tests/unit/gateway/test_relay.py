"""``Relay``: a session's events reach every attached socket in order, gaps filled or reset."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chatrelay.engine.base import Event
from chatrelay.gateway.relay import Relay
from tests.faulty_engine import Faults, faulty_engine
from tests.timing import seconds, wait_until

SESSION = "s-relay"
# A log this short cannot fill a gap of more than a few events.
SHORT_LOG = 3


class RecordingSocket:
    """A relay sink that keeps what it was handed."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.repaired: list[int] = []  # offsets handed over as not live
        self.resets: list[tuple[str, int]] = []

    @property
    def offsets(self) -> list[int]:
        return [event.offset for event in self.events]

    def deliver(self, event: Event, *, live: bool = True) -> None:
        self.events.append(event)
        if not live:
            self.repaired.append(event.offset)

    def reset(self, epoch: str, latest: int) -> None:
        self.resets.append((epoch, latest))


async def publish(faults: Faults, count: int) -> None:
    for index in range(count):
        await faults.engine.broker.publish(SESSION, {"type": "chunk", "n": index})


async def receives(socket: RecordingSocket, offsets: list[int]) -> None:
    await wait_until(lambda: socket.offsets == offsets, f"the socket receives {offsets}")


@pytest.fixture
async def faults() -> AsyncIterator[Faults]:
    created = faulty_engine()
    yield created
    await created.engine.aclose()


@pytest.fixture
async def relay(faults: Faults) -> AsyncIterator[Relay]:
    created = Relay(faults.engine.broker)
    yield created
    await created.aclose()


@pytest.fixture
async def socket(relay: Relay) -> AsyncIterator[RecordingSocket]:
    """A socket attached to the session for the whole test."""
    attached = RecordingSocket()
    async with relay.attach(SESSION, attached):
        yield attached


async def test_events_reach_every_attached_socket_in_order(faults: Faults, relay: Relay) -> None:
    await publish(faults, 2)  # before the sockets came: theirs to read from history
    first, second = RecordingSocket(), RecordingSocket()
    async with relay.attach(SESSION, first), relay.attach(SESSION, second):
        assert faults.broker.subscriber_count(SESSION) == 1  # one subscription, shared
        await publish(faults, 5)
        await receives(first, [3, 4, 5, 6, 7])
        await receives(second, [3, 4, 5, 6, 7])
    logged = await faults.engine.broker.history(SESSION, 2)
    assert first.events == second.events == logged.events  # the log's very bytes
    assert first.resets == second.resets == []


async def test_dropped_live_events_are_filled_from_the_log_when_a_later_one_comes(
    faults: Faults, relay: Relay, socket: RecordingSocket
) -> None:
    await publish(faults, 2)
    faults.broker.drop_live(SESSION, 3)
    await publish(faults, 3)
    await publish(faults, 1)  # offset 6 reveals the hole
    await receives(socket, [1, 2, 3, 4, 5, 6])
    assert faults.broker.dropped == [(SESSION, 3), (SESSION, 4), (SESSION, 5)]
    assert socket.resets == []
    assert relay.gaps_repaired == 1
    assert socket.repaired == [3, 4, 5]  # not live: kept out of the latency metric (finding 9)


async def test_a_re_established_subscription_fills_the_gap_with_no_later_event(
    faults: Faults, socket: RecordingSocket
) -> None:
    await publish(faults, 1)
    faults.broker.drop_live(SESSION, 2, then_reconnect=True)
    await publish(faults, 2)  # the last events of an answer: nothing follows them
    await receives(socket, [1, 2, 3])
    await publish(faults, 1)
    await receives(socket, [1, 2, 3, 4])
    assert socket.resets == []


async def test_a_gap_the_trimmed_log_cannot_fill_resets_the_sockets() -> None:
    faults = faulty_engine(max_events=SHORT_LOG)
    relay = Relay(faults.engine.broker)
    socket = RecordingSocket()
    try:
        async with relay.attach(SESSION, socket):
            await publish(faults, 1)
            faults.broker.drop_live(SESSION, SHORT_LOG + 2)
            await publish(faults, SHORT_LOG + 2)
            await publish(faults, 1)  # offset 7: the log holds only 5..7
            epoch, latest = await faults.engine.broker.position(SESSION)
            await wait_until(lambda: socket.resets == [(epoch, latest)], "the socket is reset")
            await publish(faults, 1)
            await receives(socket, [1, latest + 1])  # live again after the reset
    finally:
        await relay.aclose()


async def test_a_lost_log_resets_the_sockets_to_its_new_epoch(
    faults: Faults, socket: RecordingSocket
) -> None:
    await publish(faults, 2)
    await receives(socket, [1, 2])
    old_epoch, _ = await faults.engine.broker.position(SESSION)
    faults.broker.lose_logs()  # the engine restarted empty; its connection came back
    new_epoch, _ = await faults.engine.broker.position(SESSION)
    assert new_epoch != old_epoch
    await wait_until(lambda: socket.resets == [(new_epoch, 0)], "the socket is reset")
    await publish(faults, 1)  # offset 1 of the new log
    await receives(socket, [1, 2, 1])


async def test_a_log_lost_under_a_live_subscription_does_not_go_unnoticed(
    faults: Faults, socket: RecordingSocket
) -> None:
    await publish(faults, 3)
    await receives(socket, [1, 2, 3])
    faults.broker.lose_logs(reconnect=False)
    await publish(faults, 1)  # offset 1 of a new epoch
    new_epoch, _ = await faults.engine.broker.position(SESSION)
    await wait_until(
        lambda: [epoch for epoch, _ in socket.resets] == [new_epoch] or len(socket.events) == 4,
        "the socket is reset to the new epoch or handed its event",
        timeout=seconds(1),
    )


async def test_a_log_read_that_fails_during_a_repair_is_retried(
    faults: Faults, socket: RecordingSocket
) -> None:
    await publish(faults, 1)
    faults.broker.drop_live(SESSION, 2)
    faults.broker.fail_history(1)
    await publish(faults, 3)  # offset 4 reveals the hole; the first repair fails
    await receives(socket, [1, 2, 3, 4])
    await publish(faults, 1)
    await receives(socket, [1, 2, 3, 4, 5])
    assert socket.resets == []


async def test_the_last_socket_leaving_unsubscribes(faults: Faults, relay: Relay) -> None:
    first, second = RecordingSocket(), RecordingSocket()
    async with relay.attach(SESSION, first):
        async with relay.attach(SESSION, second):
            assert (relay.session_count, faults.broker.subscriber_count(SESSION)) == (1, 1)
        assert (relay.session_count, faults.broker.subscriber_count(SESSION)) == (1, 1)
        await publish(faults, 1)
        await receives(first, [1])
    assert (relay.session_count, faults.broker.subscriber_count(SESSION)) == (0, 0)
    assert second.events == []

    third = RecordingSocket()  # a later socket subscribes afresh
    async with relay.attach(SESSION, third):
        await publish(faults, 1)
        await receives(third, [2])
