"""The outbox relay against a real broker, in process: order, acknowledgement, dead letters."""

from __future__ import annotations

from pathlib import Path

from chatrelay.engine import create_engine
from chatrelay.events.producer import EventProducer
from chatrelay.events.relay import OutboxRelay
from chatrelay.store.conversations import ConversationStore
from tests.fixtures.kafka_server import KafkaServer
from tests.integration.events.topic import actual_events, duplicates, new_topic, read_topic
from tests.timing import seconds, wait_until

# Over librdkafka's default message.max.bytes (1,000,000): refused before it is sent.
TOO_LARGE_CHARS = 1_100_000


async def test_a_too_large_event_is_dead_lettered_and_the_rest_go_on(
    kafka_server: KafkaServer, tmp_path: Path
) -> None:
    topic = new_topic()
    engine = create_engine("memory://")
    url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    async with ConversationStore(url, node="n1", record_events=True) as store:
        await store.claim_session("s1", "alice")
        await store.add_message(
            message_id="u1", session_id="s1", role="user", content="hi", status="complete"
        )
        await store.add_message(
            message_id="u2",
            session_id="s1",
            role="user",
            content="x" * TOO_LARGE_CHARS,
            status="complete",
        )
        await store.add_message(
            message_id="u3", session_id="s1", role="user", content="after", status="complete"
        )
        relay = OutboxRelay(
            engine, store.outbox, lambda: EventProducer(kafka_server.bootstrap, topic), "n1"
        )
        try:
            relay.start()
            await wait_until(
                lambda: relay.relayed == 3, "the relay delivered the others", seconds(30)
            )
            dead = await store.outbox.dead_letters()
            backlog = await store.outbox.backlog()
        finally:
            await relay.aclose()
            await engine.aclose()
    assert len(dead) == 1 and "too large" in dead[0][1].lower(), dead
    assert relay.dead_lettered == 1
    assert backlog.count == 0
    events = read_topic(kafka_server.bootstrap, topic)
    assert actual_events(events) == [
        ("session.created", ""),
        ("message.user", "u1"),
        ("message.user", "u3"),
    ]
    assert duplicates(events) == {}
