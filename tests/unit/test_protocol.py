"""Server frames as the builders make them follow the schema; parsing is strict about shape."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import TypeAdapter

from chatrelay import wire_schema
from chatrelay.exceptions import FrameError
from chatrelay.protocol.client_frames import parse_client_frame
from chatrelay.protocol.server_frames import (
    ServerFrame,
    Usage,
    chunk_frame,
    complete_frame,
    error_frame,
    message_frame,
    reconnect_frame,
    reset_frame,
    welcome_frame,
    wire_message,
)
from chatrelay.store.records import MessageRecord
from chatrelay.wire_client import SERVER_FRAME_TYPES, log_offset, parse_server_frame

SERVER_FRAME = TypeAdapter[ServerFrame](ServerFrame)
USAGE: Usage = {"model": "simulated", "tokens": 1, "ttft_ms": None, "duration_ms": 2.5}
RECORD = MessageRecord(
    id="m1",
    session_id="s1",
    role="assistant",
    content="hi",
    status="completed",
    created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    model="simulated",
    usage=dict(USAGE),
)


def _numbered(event: object, offset: int = 7) -> dict[str, object]:
    # What the engine puts on the wire: the offset first, then the event's fields.
    assert isinstance(event, dict)
    return {"offset": offset, **event}


def test_every_frame_the_server_builds_follows_the_schema() -> None:
    frames = [
        welcome_frame("gw-1", "s1", "u1", "e1", 0),
        _numbered(message_frame(RECORD)),
        _numbered(chunk_frame("m1", 1, "hé", 1.5)),
        _numbered(complete_frame("m1", "failed", "", "the model failed", USAGE)),
        error_frame("busy", "a generation is running", client_id="c1"),
        {"type": "pong"},
        reconnect_frame("draining"),
        reset_frame("e2", 9),
    ]
    for frame in frames:
        assert SERVER_FRAME.validate_python(frame) == frame


def test_a_wire_message_leaves_out_what_the_store_does_not_have() -> None:
    assert wire_message(RECORD) == {
        "id": "m1",
        "session_id": "s1",
        "role": "assistant",
        "content": "hi",
        "status": "completed",
        "created_at": "2026-01-02T03:04:05+00:00",
        "model": "simulated",
        "usage": USAGE,
        "parent_id": None,  # always said: null is "the first message", not "unknown"
    }


def test_parsing_a_server_frame_keeps_its_fields_and_finds_its_offset() -> None:
    raw = orjson.dumps(_numbered(chunk_frame("m1", 3, "x", 1.0), offset=12))
    frame = parse_server_frame(raw)
    assert frame["type"] == "chunk" and frame["delta"] == "x"
    assert log_offset(frame) == 12
    assert log_offset(parse_server_frame(b'{"type": "pong"}')) is None


def test_the_reader_knows_every_server_frame_type_of_the_schema() -> None:
    definitions = wire_schema.json_schema()["$defs"]
    members = [ref["$ref"].rsplit("/", 1)[1] for ref in definitions["ServerFrame"]["oneOf"]]
    in_schema = {definitions[name]["properties"]["type"]["const"] for name in members}
    assert SERVER_FRAME_TYPES == in_schema
    assert len(in_schema) == len(members) == 10


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"type": "chat"}', b"{}"])
def test_what_is_not_a_server_frame_is_refused(raw: bytes) -> None:
    with pytest.raises(FrameError) as refused:
        parse_server_frame(raw)
    assert refused.value.code == "bad_frame"


@pytest.mark.parametrize("message_id", ["", ".", "a\nb", "x" * 129])
def test_a_cancel_of_a_malformed_message_id_is_an_invalid_message(message_id: str) -> None:
    frame = orjson.dumps({"type": "cancel", "message_id": message_id})
    with pytest.raises(FrameError) as refused:
        parse_client_frame(frame, 16_000)
    assert refused.value.code == "invalid_message"
