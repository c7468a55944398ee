"""A socket that stops reading does not delay the others (same session, same gateway).

Chunk inter-arrival times of two reading clients are measured during one long
answer without a stalled socket and during one with a stalled socket on the
same session; they must stay of the same order. The machine is shared and
noisy, so the bound is a loose ratio, and the numbers are printed.
"""

from __future__ import annotations

import itertools
import socket
import statistics
from urllib.parse import urlsplit

import websockets

from tests.fixtures.cluster import RunningCluster
from tests.integration.faults.conftest import CHUNK_DELAY
from tests.integration.faults.observed import Observed, check_invariants, new_session, new_user
from tests.timing import seconds

# Loose: a stalled reader may not make the others' 95th percentile gap more than this much worse.
RATIO = 3.0


def _gaps(observed: Observed, message_id: str) -> list[float]:
    times = [
        t
        for t, f in zip(observed.arrivals, observed.frames, strict=True)
        if f["type"] == "chunk" and f["message_id"] == message_id
    ]
    return [b - a for a, b in itertools.pairwise(times)]


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


async def _answer_gaps(readers: list[Observed], content: str) -> list[float]:
    message_id = await readers[0].chat(content)
    for reader in readers:
        await reader.wait_complete(message_id, seconds(30))
    return [gap for reader in readers for gap in _gaps(reader, message_id)]


async def test_a_stalled_socket_does_not_delay_the_others(
    cluster: RunningCluster, gateway_sources: dict[str, str]
) -> None:
    source = next(iter(gateway_sources.values()))
    user, session = new_user(), new_session()
    readers = [await Observed.open(cluster.ws, session, user, source) for _ in range(2)]
    stalled = None
    try:
        baseline = await _answer_gaps(readers, "explain the baseline")

        # Reads its welcome, then nothing: one unread frame stops its reading, and a
        # tiny receive buffer makes nginx and the gateway hold the rest.
        parts = urlsplit(cluster.url)
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.bind((source, 0))
        raw.connect((parts.hostname, parts.port))
        stalled = await websockets.connect(
            f"{cluster.ws}?session_id={session}&user_id={user}",
            sock=raw,
            max_queue=1,
            max_size=None,
        )
        await stalled.recv()
        with_stall = await _answer_gaps(readers, "explain it again while one tab sleeps")
        for reader in readers:
            await check_invariants(reader)
        base_p95, stall_p95 = _p95(baseline), _p95(with_stall)
        print(
            f"\nslow consumer: chunk inter-arrival of the other sockets (model writes every "
            f"{CHUNK_DELAY * 1000:.0f} ms): "
            f"baseline median {statistics.median(baseline) * 1000:.1f} "
            f"ms, p95 {base_p95 * 1000:.1f} ms, max {max(baseline) * 1000:.1f} ms; "
            f"with a stalled socket median {statistics.median(with_stall) * 1000:.1f} ms, "
            f"p95 {stall_p95 * 1000:.1f} ms, max {max(with_stall) * 1000:.1f} ms"
        )
        assert stall_p95 <= RATIO * base_p95 + CHUNK_DELAY, (base_p95, stall_p95)
        assert statistics.median(with_stall) <= RATIO * statistics.median(baseline)
    finally:
        if stalled is not None:
            stalled.transport.abort()
        for reader in readers:
            await reader.close()
