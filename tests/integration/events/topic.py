"""Reading a test's topic back, and what its events should be."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from typing import Any

from chatrelay.events.consumer import TopicReader


def new_topic() -> str:
    return f"test.events.{uuid.uuid4().hex[:8]}"


def read_topic(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every event the topic holds now, in partition order."""
    with TopicReader(bootstrap, topic) as reader:
        return list(reader.read_all())


def duplicates(events: list[dict[str, Any]]) -> dict[str, int]:
    return {event_id: n for event_id, n in Counter(e["id"] for e in events).items() if n > 1}


def by_session(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each session's events in topic order, each id once (its first delivery)."""
    seen: set[str] = set()
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if event["id"] not in seen:
            seen.add(event["id"])
            sessions[event["session_id"]].append(event)
    return dict(sessions)


def expected_events(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(type, message id) a session's stored messages (oldest first) should have produced."""
    expected = [("session.created", "")]
    for message in messages:
        if message["role"] == "user":
            expected.append(("message.user", message["id"]))
        else:
            expected.append(("message.started", message["id"]))
            expected.append(("message.finished", message["id"]))
    return expected


def actual_events(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["data"].get("message_id", "")) for e in events]
