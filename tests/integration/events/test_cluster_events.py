"""The event log of a real cluster: ``cluster up --kafka`` with 2 gateways, 2 workers,
PostgreSQL, and its own Kafka broker.

The tests run in order on one cluster, each on sessions of its own: every
stored message has its events exactly once and in order; the broker SIGKILLed
while chats stream (chat goes on, the backlog drains, still no duplicate);
the relay's node SIGKILLed (another node takes over, nothing missing); and
last a rebuild from the topic into an empty PostgreSQL equals the store,
table by table (with cancelled and interrupted answers in it).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from chatrelay.store.database import open_database
from tests.fixtures.cluster import RunningCluster, running_cluster
from tests.fixtures.postgres_server import PostgresNotInstalled, PostgresServer, running_postgres
from tests.integration.cluster.clients import new_session, new_user
from tests.integration.events.topic import (
    actual_events,
    by_session,
    duplicates,
    expected_events,
    read_topic,
)
from tests.timing import seconds, wait_until

TOPIC = "chatrelay.events"
RELAY_LEADER_LINE = "this node relays the event outbox now"
# Answers stream for ~1 s (23 chunks): long enough to kill something mid-answer.
CHUNK_DELAY = 0.05
LEASE_TTL = 3.0


@dataclass
class EventsCluster:
    cluster: RunningCluster
    postgres: PostgresServer
    database_url: str

    @property
    def bootstrap(self) -> str:
        return self.cluster.node("kafka").url.removeprefix("kafka://")

    def topic(self) -> list[dict[str, Any]]:
        return read_topic(self.bootstrap, TOPIC)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    try:
        with running_postgres() as server:
            yield server
    except PostgresNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def events_cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer
) -> Iterator[EventsCluster]:
    database_url = postgres.create_database("events")
    with running_cluster(
        tmp_path_factory.mktemp("events") / "run",
        gateways=2,
        workers=2,
        chunk_delay=CHUNK_DELAY,
        extra_env={
            "CHATRELAY_DATABASE_URL": database_url,
            "CHATRELAY_LEASE_TTL": str(LEASE_TTL),
            # The rebuild test needs interrupted answers among the events (killed workers'
            # answers are otherwise continued: tests/integration/faults/test_worker_failover.py).
            "CHATRELAY_FAILOVER": "interrupt",
        },
        options=("--kafka",),
    ) as cluster:
        yield EventsCluster(cluster, postgres, database_url)


@pytest.fixture
async def client(events_cluster: EventsCluster) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=events_cluster.cluster.url, timeout=seconds(10)
    ) as client:
        yield client


async def start_chat(client: httpx.AsyncClient, user: str, session: str, content: str) -> str:
    answer = await client.post(
        "/api/chat", params={"user_id": user}, json={"session_id": session, "message": content}
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["message_id"])


async def history(client: httpx.AsyncClient, user: str, session: str) -> list[dict[str, Any]]:
    answer = await client.get(f"/api/history/{session}", params={"user_id": user})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["messages"])


async def finished(
    client: httpx.AsyncClient, user: str, session: str, timeout: float = seconds(60)
) -> list[dict[str, Any]]:
    """The session's messages once no answer in it is streaming."""
    messages: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal messages
        try:
            messages = await history(client, user, session)
        except httpx.TransportError:
            return False  # a gateway restarting
        return bool(messages) and all(m["status"] != "streaming" for m in messages)

    await wait_until(done, f"the answers of {session} to end", timeout)
    return messages


async def conversation(client: httpx.AsyncClient, turns: int) -> tuple[str, str]:
    user, session = new_user(), new_session()
    for turn in range(turns):
        await start_chat(client, user, session, f"question {turn} of {session}")
        await finished(client, user, session)
    return user, session


async def wait_for_events(
    events: EventsCluster, sessions: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The topic, once it holds every expected event of ``sessions`` (session -> messages)."""
    topic: list[dict[str, Any]] = []

    def complete() -> bool:
        nonlocal topic
        topic = events.topic()
        found = by_session(topic)
        return all(
            len(found.get(session, [])) >= len(expected_events(messages))
            for session, messages in sessions.items()
        )

    await wait_until(lambda: asyncio.to_thread(complete), "every event in the topic", seconds(60))
    return topic


def assert_in_order(topic: list[dict[str, Any]], sessions: dict[str, list[dict[str, Any]]]):
    found = by_session(topic)
    for session, messages in sessions.items():
        assert actual_events(found[session]) == expected_events(messages), session


async def test_fifty_chats_have_their_events_once_and_in_order(
    events_cluster: EventsCluster, client: httpx.AsyncClient
) -> None:
    # 25 conversations of 2 turns each: 50 chats, order within a session matters.
    pairs = await asyncio.gather(*(conversation(client, 2) for _ in range(25)))
    sessions = {session: await history(client, user, session) for user, session in pairs}
    topic = await wait_for_events(events_cluster, sessions)
    assert_in_order(topic, sessions)
    assert duplicates(topic) == {}
    found = by_session(topic)
    for (user, session), messages in zip(pairs, sessions.values(), strict=True):
        assert {e["user_id"] for e in found[session]} == {user}
        finished_events = [e for e in found[session] if e["type"] == "message.finished"]
        answers = [m for m in messages if m["role"] == "assistant"]
        assert [e["data"]["content"] for e in finished_events] == [m["content"] for m in answers]
        assert [e["data"]["status"] for e in finished_events] == ["completed", "completed"]
        assert all(e["data"]["usage"]["tokens"] > 0 for e in finished_events)


async def gateway_health(events: EventsCluster) -> list[str]:
    async with httpx.AsyncClient(timeout=seconds(5)) as plain:
        return [
            (await plain.get(f"{node.url}/health")).json()["events"]
            for node in events.cluster.of_role("gateway")
        ]


async def test_chat_goes_on_while_the_broker_is_killed_and_the_backlog_drains(
    events_cluster: EventsCluster, client: httpx.AsyncClient
) -> None:
    chats = [(new_user(), new_session()) for _ in range(30)]
    await asyncio.gather(*(start_chat(client, u, s, "while Kafka dies") for u, s in chats))
    events_cluster.cluster.kill("kafka")
    ends = await asyncio.gather(*(finished(client, u, s) for u, s in chats))
    assert [m[-1]["status"] for m in ends] == ["completed"] * 30
    # More chats while it is down: they must not wait for Kafka either.
    more = [(new_user(), new_session()) for _ in range(5)]
    await asyncio.gather(*(start_chat(client, u, s, "Kafka is down") for u, s in more))
    for user, session in more:
        assert (await finished(client, user, session))[-1]["status"] == "completed"

    async def degraded() -> bool:
        return "degraded" in await gateway_health(events_cluster)

    await wait_until(degraded, "/health to say events: degraded", seconds(30))
    events_cluster.cluster.restart_dead()
    sessions = {s: await history(client, u, s) for u, s in chats + more}
    topic = await wait_for_events(events_cluster, sessions)
    assert_in_order(topic, sessions)
    assert duplicates(topic) == {}  # no relay died: the idempotent producer wrote each once

    async def healthy() -> bool:
        return set(await gateway_health(events_cluster)) == {"ok"}

    await wait_until(healthy, "/health to say events: ok again", seconds(30))


def relay_leaders(cluster: RunningCluster) -> list[str]:
    return [
        node.node_id
        for node in cluster.nodes
        if node.role in ("gateway", "worker")
        and cluster.alive(node.node_id)
        and RELAY_LEADER_LINE in node.log_text()
    ]


async def test_another_node_takes_over_when_the_relays_node_is_killed(
    events_cluster: EventsCluster, client: httpx.AsyncClient
) -> None:
    cluster = events_cluster.cluster
    cluster.refresh()
    leaders = relay_leaders(cluster)
    assert len(leaders) == 1, leaders
    chats = [(new_user(), new_session()) for _ in range(20)]
    await asyncio.gather(*(start_chat(client, u, s, "while the relay dies") for u, s in chats))
    await asyncio.sleep(0.3)  # mid-stream: events are being written and relayed
    cluster.kill(leaders[0])
    await wait_until(
        lambda: bool(relay_leaders(cluster)), "another node to take the relay", seconds(30)
    )
    ends = {s: await finished(client, u, s) for u, s in chats}
    topic = await wait_for_events(events_cluster, ends)
    assert_in_order(topic, ends)  # after deduplication by id: nothing missing, nothing reordered
    cluster.restart_dead()


async def stored_tables(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = open_database(database_url)
    try:
        async with engine.connect() as db:
            sessions = (
                await db.execute(
                    text(
                        "SELECT id, user_id, title, created_at, updated_at "
                        "FROM sessions ORDER BY id"
                    )
                )
            ).all()
            messages = (
                await db.execute(
                    text(
                        "SELECT session_id, id, role, content, status, client_id, error, model, "
                        "usage::text, created_at, finished_at, reply_to, parent_id FROM messages "
                        "ORDER BY session_id, row_id"
                    )
                )
            ).all()
            unsent = (
                await db.execute(text("SELECT count(*) FROM event_outbox WHERE sent_at IS NULL"))
            ).scalar_one()
    finally:
        await engine.dispose()
    return {
        "sessions": [tuple(r) for r in sessions],
        "messages": [tuple(r) for r in messages],
        "unsent": [(unsent,)],
    }


async def test_rebuild_from_the_topic_equals_the_store(
    events_cluster: EventsCluster, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    cluster = events_cluster.cluster
    # Cancelled answers.
    cancelled = [(new_user(), new_session()) for _ in range(3)]
    for user, session in cancelled:
        message_id = await start_chat(client, user, session, "cancel me")
        answer = await client.post(
            "/api/cancel",
            params={"user_id": user},
            json={"session_id": session, "message_id": message_id},
        )
        assert answer.status_code == 200, answer.text
    # Interrupted answers: every worker killed mid-answer; the restarted ones reap them.
    interrupted = [(new_user(), new_session()) for _ in range(3)]
    await asyncio.gather(*(start_chat(client, u, s, "interrupt me") for u, s in interrupted))
    await asyncio.sleep(0.3)
    for worker in cluster.of_role("worker"):
        cluster.kill(worker.node_id)
    cluster.restart_dead()
    statuses = [(await finished(client, u, s))[-1]["status"] for u, s in cancelled + interrupted]
    assert statuses == ["cancelled"] * 3 + ["interrupted"] * 3

    async def drained() -> bool:
        return (await stored_tables(events_cluster.database_url))["unsent"] == [(0,)]

    await wait_until(drained, "the outbox to drain", seconds(60))
    original = await stored_tables(events_cluster.database_url)
    target = events_cluster.postgres.create_database("rebuilt")
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "chatrelay",
            "events",
            "rebuild",
            "--database-url",
            target,
            "--bootstrap",
            events_cluster.bootstrap,
            "--topic",
            TOPIC,
        ],
        capture_output=True,
        text=True,
        timeout=seconds(120),
    )
    assert result.returncode == 0, result.stderr
    rebuilt = await stored_tables(target)
    assert len(original["sessions"]) >= 25 + 35 + 20 + 6
    assert rebuilt["sessions"] == original["sessions"]
    assert rebuilt["messages"] == original["messages"]
    statuses_stored = {row[4] for row in original["messages"]}
    assert {"completed", "cancelled", "interrupted", "complete"} <= statuses_stored
