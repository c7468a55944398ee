"""Coalescing a slow socket's queued chunks: runs, their ends, the frame limit, exact offsets."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from chatrelay.engine.base import Event
from chatrelay.engine.events import encode_event
from chatrelay.exceptions import HandshakeRefused
from chatrelay.gateway.coalesce import (
    COALESCE_AFTER,
    ChunkRun,
    coalescing_asked,
    compact,
    is_chunk_event,
)
from chatrelay.gateway.outbound import Outbound
from chatrelay.protocol.server_frames import chunk_frame, complete_frame
from tests.timing import seconds

LIMIT = 64 * 1024
TS = 1_700_000_000.25


def chunk(
    offset: int, seq: int | None = None, delta: str | None = None, message: str = "m1"
) -> Event:
    """A chunk event laid out as the engine publishes it (``offset`` first, ``ts`` last)."""
    body = chunk_frame(
        message,
        offset if seq is None else seq,
        f"<{offset}>" if delta is None else delta,
        TS + offset,
    )
    return Event(offset, encode_event(offset, orjson.dumps(body)))


def complete(offset: int, content: str, message: str = "m1") -> Event:
    return Event(
        offset, encode_event(offset, orjson.dumps(complete_frame(message, "completed", content)))
    )


async def written(outbound: Outbound) -> list[dict[str, Any]]:
    """Every frame the writer sends, up to the ``reconnect`` queued last (left out)."""
    frames: list[dict[str, Any]] = []

    async def send_text(text: str) -> None:
        frames.append(orjson.loads(text))

    outbound.send_reconnect("end of test")
    async with asyncio.timeout(seconds(5)):
        await outbound.write(send_text)
    assert frames[-1]["type"] == "reconnect"
    return frames[:-1]


def text_of(frames: list[dict[str, Any]], message: str = "m1") -> str:
    return "".join(
        f["delta"] for f in frames if f["type"] == "chunk" and f["message_id"] == message
    )


def covered(frames: list[dict[str, Any]]) -> list[int]:
    """Every offset the frames cover, in order (a coalesced frame its whole range)."""
    return [n for f in frames for n in range(f.get("from_offset", f["offset"]), f["offset"] + 1)]


def queued(count: int, *, coalesce: bool = True, limit: int = LIMIT) -> Outbound:
    outbound = Outbound(1024, coalesce_limit=limit if coalesce else 0)
    for offset in range(1, count + 1):
        outbound.deliver(chunk(offset))
    return outbound


async def test_a_backlog_of_one_answers_chunks_goes_out_as_one_frame_covering_its_range() -> None:
    frames = await written(queued(40))
    assert len(frames) == 1
    frame = frames[0]
    assert frame["type"] == "chunk" and frame["message_id"] == "m1"
    assert (frame["from_offset"], frame["offset"]) == (1, 40)
    assert (frame["from_seq"], frame["seq"]) == (1, 40)
    assert frame["delta"] == "".join(f"<{n}>" for n in range(1, 41))
    assert frame["ts"] == TS + 1  # the oldest delta's publish time


async def test_a_client_that_did_not_ask_gets_every_event_as_published() -> None:
    outbound = Outbound(1024)
    events = [chunk(n) for n in range(1, 41)]
    for event in events:
        outbound.deliver(event)
    frames = await written(outbound)
    assert [orjson.dumps(f) for f in frames] == [e.data for e in events]


async def test_a_socket_that_keeps_up_gets_the_published_bytes() -> None:
    # Fewer than COALESCE_AFTER frames wait behind the first: not behind enough to fold.
    events = [chunk(n) for n in range(1, COALESCE_AFTER + 1)]
    outbound = Outbound(1024, coalesce_limit=LIMIT)
    for event in events:
        outbound.deliver(event)
    raw: list[bytes] = []
    all_sent = asyncio.Event()

    async def send_text(text: str) -> None:
        raw.append(text.encode())
        if len(raw) == len(events):
            all_sent.set()

    writer = asyncio.create_task(outbound.write(send_text))
    async with asyncio.timeout(seconds(5)):
        await all_sent.wait()
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    assert raw == [event.data for event in events]


async def test_any_other_event_ends_a_run() -> None:
    outbound = Outbound(1024, coalesce_limit=LIMIT)
    for offset in range(1, 21):
        outbound.deliver(chunk(offset))
    outbound.deliver(complete(21, "whole text"))
    for offset in range(22, 42):  # the next answer: its seqs start again
        outbound.deliver(chunk(offset, seq=offset - 21, message="m2"))
    frames = await written(outbound)
    assert [(f["type"], f.get("from_offset"), f["offset"]) for f in frames] == [
        ("chunk", 1, 20),
        ("complete", None, 21),
        ("chunk", 22, 41),
    ]
    assert frames[2]["from_seq"] == 1 and frames[2]["seq"] == 20
    assert text_of(frames, "m2") == "".join(f"<{n}>" for n in range(22, 42))


async def test_a_chunk_of_another_answer_ends_a_run() -> None:
    outbound = Outbound(1024, coalesce_limit=LIMIT)
    for offset in range(1, 31):
        outbound.deliver(chunk(offset, message="m1" if offset <= 15 else "m2"))
    frames = await written(outbound)
    assert [(f["message_id"], f["from_offset"], f["offset"]) for f in frames] == [
        ("m1", 1, 15),
        ("m2", 16, 30),
    ]


def test_a_run_takes_only_the_next_offset_and_seq_of_its_answer() -> None:
    run = ChunkRun.start((5, chunk(5).data, True), LIMIT)
    assert run is not None
    assert not run.add((7, chunk(7, seq=6).data, True))  # an offset skipped
    assert not run.add((6, chunk(6, seq=7).data, True))  # a seq skipped
    assert not run.add((6, chunk(6, seq=5).data, True))  # a seq repeated
    assert not run.add((6, chunk(6, message="m2").data, True))
    assert not run.add((0, b'{"type":"pong"}', False))  # outside the log
    assert run.add((6, chunk(6).data, True))
    assert run.encode() != chunk(5).data and (run.offset, run.seq) == (6, 6)


def test_a_run_of_one_is_the_events_own_bytes() -> None:
    data = chunk(3).data
    run = ChunkRun.start((3, data, True), LIMIT)
    assert run is not None and run.encode() == data
    assert ChunkRun.start((4, complete(4, "x").data, True), LIMIT) is None
    assert is_chunk_event(data) and not is_chunk_event(complete(4, "x").data)


@pytest.mark.parametrize("delta", ["word ", 'a "quoted"\n\tline ', "naïve 日本語 🙂 "])
async def test_no_frame_passes_the_frame_limit_and_the_text_stays_exact(delta: str) -> None:
    limit = 600
    outbound = Outbound(1024, coalesce_limit=limit)
    deltas = [f"{delta}{n}" for n in range(1, 201)]
    for offset, text in enumerate(deltas, start=1):
        outbound.deliver(chunk(offset, delta=text))
    raw: list[bytes] = []

    async def send_text(text: str) -> None:
        raw.append(text.encode())

    outbound.send_reconnect("end")
    async with asyncio.timeout(seconds(5)):
        await outbound.write(send_text)
    frames = [orjson.loads(data) for data in raw[:-1]]
    assert max(len(data) for data in raw) <= limit
    assert 1 < len(frames) < 200
    assert covered(frames) == list(range(1, 201))
    assert text_of(frames) == "".join(deltas)
    for frame in frames:
        assert frame["seq"] - frame.get("from_seq", frame["seq"]) == frame["offset"] - frame.get(
            "from_offset", frame["offset"]
        )


async def test_a_chunk_larger_than_the_room_left_goes_out_alone() -> None:
    outbound = Outbound(1024, coalesce_limit=400)
    sizes = [10] * 12 + [300] + [10] * 12
    for offset, size in enumerate(sizes, start=1):
        outbound.deliver(chunk(offset, delta="x" * size))
    frames = await written(outbound)
    assert covered(frames) == list(range(1, len(sizes) + 1))
    assert text_of(frames) == "".join("x" * size for size in sizes)
    assert any(f["delta"] == "x" * 300 and "from_offset" not in f for f in frames)


async def test_offsets_sent_before_are_sent_again_one_by_one() -> None:
    # Welcomed at 10: live 11..30 are queued before the replay of 1..10 fills the
    # hole below them; they then come again, after it (outbound.py's docstring).
    # The second copies are not folded: a client that took some of the first
    # ones must be able to drop exactly those.
    outbound = Outbound(1024, coalesce_limit=LIMIT)
    outbound.start_at(10)
    for offset in range(11, 31):
        outbound.deliver(chunk(offset))
    await outbound.replay(0, [chunk(n) for n in range(1, 31)])
    frames = await written(outbound)
    assert [(f.get("from_offset"), f["offset"]) for f in frames] == [
        (11, 30),
        *((None, n) for n in range(1, 31)),
    ]


async def test_a_slow_socket_gets_fewer_frames_and_the_same_text() -> None:
    count = 400
    outbound = Outbound(1024, coalesce_limit=LIMIT)
    frames: list[dict[str, Any]] = []

    async def slow_send(text: str) -> None:
        frames.append(orjson.loads(text))
        for _ in range(10):  # the client reads one frame while ten chunks arrive
            await asyncio.sleep(0)

    async def stream() -> None:
        for offset in range(1, count + 1):
            outbound.deliver(chunk(offset))
            await asyncio.sleep(0)
        outbound.deliver(complete(count + 1, "done"))
        outbound.send_reconnect("end")

    async with asyncio.timeout(seconds(5)):
        await asyncio.gather(stream(), outbound.write(slow_send))
    frames = frames[:-1]
    assert covered(frames) == list(range(1, count + 2))
    assert text_of(frames) == "".join(f"<{n}>" for n in range(1, count + 1))
    assert len(frames) < count // 4


async def test_every_folded_chunk_counts_as_relayed() -> None:
    def relayed() -> float:
        return REGISTRY.get_sample_value("chatrelay_chunks_relayed_total") or 0.0

    before = relayed()
    await written(queued(40))
    assert relayed() - before == 40


async def test_an_overflow_hint_names_the_last_offset_the_coalesced_frame_covered() -> None:
    outbound = queued(40)
    sent: list[dict[str, Any]] = []
    first_sent = asyncio.Event()

    async def send_once(text: str) -> None:
        if sent:
            await asyncio.Event().wait()  # the client stopped reading after one frame
        sent.append(orjson.loads(text))
        first_sent.set()

    writer = asyncio.create_task(outbound.write(send_once))
    async with asyncio.timeout(seconds(5)):
        await first_sent.wait()
        # One more than the queue holds, of events compacting cannot fold.
        for offset in range(41, 41 + 1025):
            outbound.deliver(complete(offset, "x", message=f"m{offset}"))
        await writer
    assert (sent[0]["from_offset"], sent[0]["offset"]) == (1, 40)
    assert outbound.close_reason == (4408, "too slow; reconnect and resume from offset 40")


@pytest.mark.parametrize(
    ("value", "asked"), [(None, False), ("0", False), ("false", False), ("1", True), ("true", True)]
)
def test_the_opt_in_is_coalesce_1(value: str | None, asked: bool) -> None:
    query = {} if value is None else {"coalesce": value}
    assert coalescing_asked(query) is asked


def test_a_misspelt_opt_in_is_refused_with_4400() -> None:
    with pytest.raises(HandshakeRefused) as refused:
        coalescing_asked({"coalesce": "yes"})
    assert refused.value.code == 4400 and "coalesce" in refused.value.reason


class Stalled:
    """A client that reads one frame, then nothing until ``resume`` (its frames recorded)."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.first = asyncio.Event()
        self.reading = asyncio.Event()

    async def send_text(self, text: str) -> None:
        if self.raw:
            await self.reading.wait()
        self.raw.append(text.encode())
        self.first.set()

    def frames(self) -> list[dict[str, Any]]:
        return [orjson.loads(data) for data in self.raw]


async def test_a_full_queue_is_compacted_instead_of_closing_a_slow_reader() -> None:
    count = 5000  # almost five times what the queue holds
    outbound = Outbound(1024, coalesce_limit=LIMIT)
    client = Stalled()
    writer = asyncio.create_task(outbound.write(client.send_text))
    outbound.deliver(chunk(1))
    async with asyncio.timeout(seconds(5)):
        await client.first.wait()
        for offset in range(2, count + 1):
            outbound.deliver(chunk(offset))
        outbound.deliver(complete(count + 1, "done"))
        outbound.send_reconnect("end")
        client.reading.set()
        await writer
    assert outbound.close_reason[0] != 4408
    frames = client.frames()[:-1]
    assert covered(frames) == list(range(1, count + 2))
    assert text_of(frames) == "".join(f"<{n}>" for n in range(1, count + 1))
    assert len(frames) < 10


async def test_a_full_queue_of_what_cannot_be_folded_still_closes_the_socket() -> None:
    outbound = Outbound(64, coalesce_limit=LIMIT)
    client = Stalled()
    writer = asyncio.create_task(outbound.write(client.send_text))
    outbound.deliver(chunk(1))
    async with asyncio.timeout(seconds(5)):
        await client.first.wait()
        for offset in range(2, 2 + 65):  # chunks of different answers: no run
            outbound.deliver(chunk(offset, seq=1, message=f"m{offset}"))
        await writer
    assert outbound.close_reason == (4408, "too slow; reconnect and resume from offset 1")


def test_compacting_folds_runs_above_what_was_taken_and_keeps_the_rest() -> None:
    items = [
        (0, b'{"type":"pong"}', False),
        *((n, chunk(n).data, True) for n in range(3, 7)),  # taken up to 4: 3, 4 stay
        (7, complete(7, "x").data, True),
        *((n, chunk(n, seq=n - 7, message="m2").data, True) for n in range(8, 12)),
    ]
    once = compact(items, 4, LIMIT)
    assert [item[0] for item in once] == [0, 3, 4, 6, 7, 11]
    folded = orjson.loads(once[3][1])
    assert (folded["from_offset"], folded["offset"], folded["delta"]) == (5, 6, "<5><6>")
    assert orjson.loads(once[5][1])["from_seq"] == 1
    # A folded frame folds on with the chunks after it, exactly.
    twice = compact([*once, (12, chunk(12, seq=5, message="m2").data, True)], 4, LIMIT)
    last = orjson.loads(twice[-1][1])
    assert (last["from_offset"], last["offset"], last["from_seq"], last["seq"]) == (8, 12, 1, 5)
    assert last["delta"] == "<8><9><10><11><12>"


def test_compacting_keeps_each_frame_under_the_limit() -> None:
    items = [(n, chunk(n, delta="y" * 50).data, True) for n in range(1, 101)]
    compacted = compact(compact(items, 0, 500), 0, 500)
    assert max(len(item[1]) for item in compacted) <= 500
    assert "".join(orjson.loads(item[1])["delta"] for item in compacted) == "y" * 5000
    assert 1 < len(compacted) < 100


async def test_chunks_folded_by_compacting_count_as_relayed_once() -> None:
    def relayed() -> float:
        return REGISTRY.get_sample_value("chatrelay_chunks_relayed_total") or 0.0

    before = relayed()
    outbound = Outbound(64, coalesce_limit=LIMIT)
    client = Stalled()
    writer = asyncio.create_task(outbound.write(client.send_text))
    async with asyncio.timeout(seconds(5)):
        outbound.deliver(chunk(1))
        await client.first.wait()
        for offset in range(2, 501):
            outbound.deliver(chunk(offset))
        outbound.send_reconnect("end")
        client.reading.set()
        await writer
    assert relayed() - before == 500
