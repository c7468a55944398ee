"""The event envelope: small, versioned, CloudEvents-like, in JSON.

``{"v": 1, "id": <UUIDv7>, "type": ..., "time": <ISO 8601 UTC>, "session_id": ...,
"user_id": ..., "node": ..., "data": {...}}``. The ``id`` is unique per event
and is what consumers deduplicate on (delivery is at least once); the Kafka
key is ``session_id``, so one session's events are ordered in one partition.
docs/events.md shows every type with an example.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal, cast, get_args

import orjson
import uuid_utils

ENVELOPE_VERSION: Final = 1

EventType = Literal[
    "session.created",
    "session.renamed",
    "message.user",
    "message.started",
    "message.finished",
    "session.deleted",
]
EVENT_TYPES: Final[frozenset[str]] = frozenset(get_args(EventType))
ENVELOPE_FIELDS: Final = ("v", "id", "type", "time", "session_id", "user_id", "node", "data")


class BadEvent(ValueError):
    """Bytes that are not an event of a known type and version."""


def new_event(
    type_: EventType,
    *,
    session_id: str,
    user_id: str,
    node: str,
    time: datetime,
    data: dict[str, Any],
) -> dict[str, Any]:
    """An event with a fresh UUIDv7 id, ``time`` in UTC."""
    return {
        "v": ENVELOPE_VERSION,
        "id": str(uuid_utils.uuid7()),
        "type": type_,
        "time": format_time(time),
        "session_id": session_id,
        "user_id": user_id,
        "node": node,
        "data": data,
    }


def format_time(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds: what the store holds, exactly."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def decode(raw: bytes | str) -> dict[str, Any]:
    """The event in ``raw``; raises ``BadEvent`` saying what is wrong with it."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadEvent(f"not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise BadEvent("not a JSON object")
    missing = [name for name in ENVELOPE_FIELDS if name not in event]
    if missing:
        raise BadEvent(f"missing {', '.join(missing)}")
    if event["v"] != ENVELOPE_VERSION:
        raise BadEvent(f"unknown envelope version {event['v']!r}")
    if event["type"] not in EVENT_TYPES:
        raise BadEvent(f"unknown type {event['type']!r}")
    if not isinstance(event["data"], dict):
        raise BadEvent("data is not an object")
    return cast(dict[str, Any], event)
