"""The event byte layout: offset first, ts last, the same from Python and from publish.lua."""

from __future__ import annotations

import orjson
import pytest

from chatrelay.engine.base import Engine
from chatrelay.engine.events import encode_event, offset_of, timestamp_of

FRAMES: list[dict[str, object]] = [
    {},
    {"type": "chunk", "message_id": "m1", "seq": 3, "delta": 'é "x", {}', "ts": 1733300000.25},
    {"type": "message", "message": {"id": "m1", "content": "a,b"}},
]


@pytest.mark.parametrize("frame", FRAMES)
def test_encode_puts_the_offset_first(frame: dict[str, object]) -> None:
    data = encode_event(42, orjson.dumps(frame))
    assert orjson.loads(data) == {"offset": 42, **frame}
    assert data.startswith(b'{"offset":42')
    assert offset_of(data) == 42


def test_timestamp_is_read_from_the_last_field() -> None:
    chunk = encode_event(1, orjson.dumps(FRAMES[1]))
    assert timestamp_of(chunk) == 1733300000.25
    assert timestamp_of(encode_event(1, b"{}")) == 0.0
    assert timestamp_of(b'{"offset":1,"ts":"soon"}') == 0.0


@pytest.mark.parametrize("frame", FRAMES)
async def test_publish_lua_builds_the_same_bytes(engine: Engine, frame: dict[str, object]) -> None:
    first = await engine.broker.publish("s1", {})
    published = await engine.broker.publish("s1", frame)
    stored = (await engine.broker.history("s1", since=first.event.offset)).events
    assert stored == [published.event]
    assert published.event.data == encode_event(2, orjson.dumps(frame))
    assert offset_of(stored[0].data) == 2
