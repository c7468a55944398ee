"""Hostile frames against a live gateway (issue 11, "What must be shown"; issue 17, finding 7).

A real ``chatrelay serve`` on PostgreSQL (the store that refuses NUL) gets
at least 10,000 generated client frames (frame_strategies.py: wrong types,
missing and extra fields, huge and negative numbers, deep nesting, binary
frames, text frames that are not UTF-8, sizes around the 16,000-character and
64 KiB limits, unknown types, valid frames among them) on a few sockets, while
a control session streams answers on another socket and a REST probe polls.
The campaign runs once per module; each test below asserts one thing a user
or an operator would notice:

- every frame gets the answer docs/protocol.md gives it (its error code, its
  normal answer, or the documented close code), and the socket carries on;
- the control session's answers arrive whole: each chunk once, in order,
  ``complete`` completed, the text equal to the stored message;
- no REST call answers 5xx, during the campaign or after it;
- the server logs no exception.

Each frame is followed by a sentinel, a chat whose content is not a string
and whose ``client_id`` is unique: the protocol answers it with an
``invalid_message`` error naming that ``client_id``, so everything that
arrived before that error (log frames aside) is the frame's own answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import re
import threading
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from chatrelay.config import Settings
from chatrelay.gateway import close_codes
from chatrelay.llm.simulated import choose_answer
from chatrelay.wire_client import WireClient
from tests.fixtures.postgres_server import PostgresNotInstalled, running_postgres
from tests.fixtures.processes import Server, start_server
from tests.integration.frame_strategies import (
    RESET,
    FuzzFrame,
    client_frames,
    closed,
    error,
)
from tests.timing import seconds

MAX_FRAME_BYTES: int = Settings().resolved_max_frame_bytes
MAX_MESSAGE_CHARS: int = Settings.model_fields["max_message_chars"].default
# 105 examples of 100 frames: the issue asks for at least 10,000.
FRAMES_PER_EXAMPLE = 100
EXAMPLES = 105
MIN_FRAMES = 10_000
FUZZ_SOCKETS = 8
# One frame and its sentinel answered; an example of 100 frames on 8 sockets.
ANSWER_TIMEOUT = seconds(10)
EXAMPLE_TIMEOUT = seconds(120)
# The control user stays within the per-user chat rate (1 a second after a burst).
CONTROL_PACE_SECONDS = 1.0
REST_PROBE_INTERVAL = 0.1
# Frames of the session log: they come to every socket of the session, answer no frame.
LOG_FRAMES = frozenset({"message", "chunk", "complete"})
# A socket frame budget (issue 17, finding 4) may refuse any frame, or close a
# flooding socket: accepted by name where main has them. The fuzz sockets get a
# budget far above what they send, so the frames reach the parser.
FRAME_BUDGET_ENV = {
    "CHATRELAY_FRAME_RATE_BURST": "1000000",
    "CHATRELAY_FRAME_RATE_PER_SECOND": "1000000",
}
ALWAYS_ACCEPTED = frozenset(
    {error("rate_limited")}
    | {closed(code) for name in ("FLOODING",) if (code := getattr(close_codes, name, None))}
)
# What an operator must not find in the log after hostile input.
LOG_PROBLEM = re.compile(r"Traceback|\[(error|critical)\s*\]|Exception in ASGI", re.IGNORECASE)


@dataclass
class Failure:
    """Frames of one kind that got an answer the protocol does not allow."""

    label: str
    outcome: str
    expected: frozenset[str]
    smallest: FuzzFrame
    count: int = 0

    def describe(self) -> str:
        return (
            f"{self.count}x {self.label}: got {self.outcome}, "
            f"expected one of {sorted(self.expected)}; smallest: {self.smallest!r}"
        )


@dataclass
class Report:
    """What the campaign saw; the tests assert on it."""

    frames: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    failures: dict[tuple[str, str], Failure] = field(default_factory=dict)
    control_turns: int = 0
    control_problems: list[str] = field(default_factory=list)
    rest_calls: int = 0
    rest_5xx: list[str] = field(default_factory=list)
    log: str = ""

    def judge(self, frame: FuzzFrame, outcome: str) -> None:
        self.frames += 1
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome in frame.expected or outcome in ALWAYS_ACCEPTED:
            return
        key = (frame.label, outcome)
        failure = self.failures.setdefault(
            key, Failure(frame.label, outcome, frame.expected, frame)
        )
        failure.count += 1
        if frame.size < failure.smallest.size:
            failure.smallest = frame


async def connect(server: Server, user: str, session: str, record: bool = True) -> WireClient:
    """A wire client on a ``websockets`` connection without keepalive pings: a ping's
    payload comes from the ``random`` module, which Hypothesis forbids touching while it
    draws (this loop runs beside it)."""
    query = urlencode({"user_id": user, "session_id": session})
    connection = await websockets.connect(f"{server.ws}?{query}", max_size=None, ping_interval=None)
    client = WireClient(connection, record=record)
    try:
        await client.read_welcome()
    except BaseException:
        await connection.close()
        raise
    return client


class FuzzSocket:
    """One fuzzing user's socket: sends a frame and its sentinel, reads the answer,
    and connects again when the server closed it."""

    def __init__(self, server: Server, name: str) -> None:
        self._server = server
        self.user = f"fuzz-{name}"
        self.session = f"fuzz-{name}-{uuid.uuid4().hex[:8]}"
        self._sentinels = itertools.count()
        self._client: WireClient | None = None

    async def answer(self, frame: FuzzFrame) -> str:
        """Send ``frame``; what the server answered to it (see ``frame_strategies``)."""
        client = self._client or await self._connect()
        connection = client.connection
        assert isinstance(connection, ClientConnection)
        sentinel = f"fuzz-sentinel-{next(self._sentinels)}"
        answers: list[str] = []
        try:
            if frame.transport == "binary":
                assert isinstance(frame.payload, bytes)
                await connection.send(frame.payload)
            elif frame.transport == "raw_text":
                assert isinstance(frame.payload, bytes)
                await connection.send(frame.payload, text=True)
            else:
                await connection.send(frame.payload)
            await client.send({"type": "chat", "content": None, "client_id": sentinel})
            while True:
                got = await client.recv(ANSWER_TIMEOUT)
                if got["type"] == "error" and got.get("client_id") == sentinel:
                    break
                if got["type"] == "error":
                    answers.append(error(got["code"]))
                elif got["type"] not in LOG_FRAMES:
                    answers.append(got["type"])
        except ConnectionClosed:
            self._client = None
            return closed(connection.close_code or 1006)
        except TimeoutError:
            await self.close()
            return "no answer within the timeout"
        return "+".join(answers) or "none"

    async def _connect(self) -> WireClient:
        self._client = await connect(self._server, self.user, self.session, record=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class Campaign:
    """The fuzz sockets, the control session and the REST probe, on one event loop
    in a thread of its own (Hypothesis calls the test body synchronously)."""

    def __init__(self, server: Server, report: Report) -> None:
        self.server = server
        self.report = report
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop")
        self._sockets = [FuzzSocket(server, str(n)) for n in range(FUZZ_SOCKETS)]
        self._stop = asyncio.Event()
        self._background: list[concurrent.futures.Future[None]] = []
        self._sending: concurrent.futures.Future[None] | None = None

    def __enter__(self) -> Campaign:
        self._thread.start()
        for job in (self._control(), self._rest_probe()):
            self._background.append(asyncio.run_coroutine_threadsafe(job, self.loop))
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self.wait_sent()
            self.run(self._finish(), EXAMPLE_TIMEOUT)
            for job in self._background:
                job.result(EXAMPLE_TIMEOUT)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
            self.loop.close()

    def run(self, job: Coroutine[object, object, None], timeout: float) -> None:
        """Run ``job`` on the campaign's loop; wait at most ``timeout`` for it."""
        asyncio.run_coroutine_threadsafe(job, self.loop).result(timeout)

    def send(self, frames: list[FuzzFrame]) -> None:
        """Send ``frames``, spread over the fuzz sockets, and judge each answer.

        Returns once the previous batch is done, not this one: Hypothesis draws the
        next batch while this one is on the wire."""
        self.wait_sent()
        self._sending = asyncio.run_coroutine_threadsafe(self._send(frames), self.loop)

    def wait_sent(self) -> None:
        """Wait for the batch on the wire, if any (its errors are raised here)."""
        if self._sending is not None:
            sending, self._sending = self._sending, None
            sending.result(EXAMPLE_TIMEOUT)

    async def _send(self, frames: list[FuzzFrame]) -> None:
        async def one_socket(socket: FuzzSocket, share: list[FuzzFrame]) -> None:
            for frame in share:
                self.report.judge(frame, await socket.answer(frame))

        await asyncio.gather(
            *(
                one_socket(socket, frames[n :: len(self._sockets)])
                for n, socket in enumerate(self._sockets)
            )
        )

    async def _finish(self) -> None:
        self._stop.set()
        for socket in self._sockets:
            await socket.close()

    async def _control(self) -> None:
        """Chat on the control session until the campaign ends; check every answer whole."""
        user, session = "control", f"control-{uuid.uuid4().hex[:8]}"
        client = await connect(self.server, user, session)
        async with httpx.AsyncClient(base_url=self.server.http) as http:
            for n in itertools.count():
                if self._stop.is_set() and n > 0:
                    break
                started = self.loop.time()
                # Short answers mostly, and a long one (about 200 chunks) every third turn.
                prompt = f"control question {n}" + (": explain streaming" if n % 3 == 2 else "")
                try:
                    message_id = await client.chat(prompt)
                    turn = await client.follow(message_id, timeout=seconds(60))
                except (AssertionError, TimeoutError, ConnectionClosed) as exc:
                    self.report.control_problems.append(f"turn {n}: {exc!r}")
                    break
                problems = []
                seqs = [chunk["seq"] for chunk in turn.chunks]
                if seqs != list(range(1, len(seqs) + 1)):
                    problems.append(f"chunk seqs {seqs}")
                assert turn.complete is not None
                if turn.complete["status"] != "completed":
                    problems.append(f"status {turn.complete['status']}")
                if not turn.text == turn.complete["content"] == choose_answer(prompt):
                    problems.append(f"text {turn.text!r} != {turn.complete['content']!r}")
                response = await http.get(f"/api/history/{session}", params={"user_id": user})
                stored = {m["id"]: m["content"] for m in response.json()["messages"]}
                if stored.get(message_id) != turn.text:
                    problems.append(f"stored {stored.get(message_id)!r} != streamed")
                self.report.control_problems.extend(f"turn {n}: {p}" for p in problems)
                self.report.control_turns += 1
                # Pacing, not synchronisation: stay within the user's chat rate.
                await asyncio.sleep(max(0.0, CONTROL_PACE_SECONDS - (self.loop.time() - started)))
            offsets = client.offsets()
            if offsets != list(range(1, len(offsets) + 1)):
                self.report.control_problems.append(f"offsets not 1, 2, 3, ...: {offsets}")
            if client.duplicates:
                self.report.control_problems.append(f"{client.duplicates} frames came twice")
        await client.close()

    async def _rest_probe(self) -> None:
        """Poll REST during the campaign, and once more after it."""
        # The fuzz users' sessions and histories hold whatever the fuzz got stored.
        paths = ["/health", "/api/health"]
        for socket in self._sockets:
            paths += [
                f"/api/sessions?user_id={socket.user}",
                f"/api/history/{socket.session}?user_id={socket.user}",
            ]
        async with httpx.AsyncClient(base_url=self.server.http, timeout=ANSWER_TIMEOUT) as http:
            while True:
                last = self._stop.is_set()
                for path in paths:
                    response = await http.get(path)
                    self.report.rest_calls += 1
                    if response.status_code >= 500:
                        self.report.rest_5xx.append(
                            f"GET {path}: {response.status_code} {response.text[:200]}"
                        )
                if last:
                    return
                await asyncio.sleep(REST_PROBE_INTERVAL)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    """Run the campaign once against a live ``chatrelay serve`` on PostgreSQL."""
    try:
        with running_postgres() as postgres:
            server = start_server(
                tmp_path_factory.mktemp("fuzz"),
                env=FRAME_BUDGET_ENV,
                db_url=postgres.create_database("fuzz"),
            )
            try:
                yield run_campaign(server)
            finally:
                server.process.stop()
    except PostgresNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)


def run_campaign(server: Server) -> Report:
    report = Report()
    with Campaign(server, report) as campaign:

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            # The body never raises (it records), so there is nothing to shrink: the
            # report keeps the smallest frame of each failing kind instead.
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(
            st.lists(
                client_frames(MAX_MESSAGE_CHARS, MAX_FRAME_BYTES),
                min_size=FRAMES_PER_EXAMPLE,
                max_size=FRAMES_PER_EXAMPLE,
            )
        )
        def fuzz(frames: list[FuzzFrame]) -> None:
            campaign.send(frames)

        fuzz()
    report.log = server.process.log()
    return report


def test_every_fuzzed_frame_gets_its_protocol_answer(report: Report) -> None:
    failures = "\n".join(failure.describe() for failure in report.failures.values())
    assert not report.failures, (
        f"{len(report.failures)} kinds of frame answered wrongly:\n{failures}"
    )
    assert report.frames >= MIN_FRAMES, report.frames
    # The campaign reached every kind of answer, not only the cheap ones.
    for outcome in (RESET, "pong", error("invalid_message"), error("bad_frame"), closed(1009)):
        assert report.outcomes.get(outcome), (outcome, report.outcomes)


def test_the_control_stream_arrives_whole_during_the_fuzz(report: Report) -> None:
    assert report.control_turns >= 1
    assert not report.control_problems, report.control_problems


def test_no_rest_call_answers_5xx_during_or_after_the_fuzz(report: Report) -> None:
    assert report.rest_calls > 0
    assert not report.rest_5xx, report.rest_5xx


def test_the_server_logs_no_exception(report: Report) -> None:
    # Counted by message: the time and the fields (session, user, node) left out.
    problems = Counter(
        re.sub(r"^\S+Z |\s\w+=\S+", "", line)
        for line in report.log.splitlines()
        if LOG_PROBLEM.search(line)
    )
    assert not problems, "\n".join(f"{count}x {line}" for line, count in problems.most_common(20))
