"""The event byte layout, in one place: a frame's JSON with ``offset`` first and ``ts`` last.

An event is the frame exactly as a client receives it. The engine encodes the
frame once (orjson) and puts ``"offset":N`` in front of its fields, so a
gateway forwards the same bytes from the log, from pub/sub and from
``publish`` without decoding them; it reads the offset and the publish time
(``ts``, the last field of a chunk frame) back with byte searches on the hot
path. ``redis_scripts/publish.lua`` builds the same bytes inside Redis; a
unit test holds the two to this module.
"""

from __future__ import annotations

_OFFSET_HEAD = b'{"offset":'
_TS_FIELD = b',"ts":'


def encode_event(offset: int, body: bytes) -> bytes:
    """Put ``offset`` first into a JSON object already encoded as ``body``."""
    if body == b"{}":
        return b'{"offset":%d}' % offset
    return b'{"offset":%d,%s' % (offset, body[1:])


def offset_of(data: bytes) -> int:
    """The offset of an event's JSON (its first field)."""
    start = len(_OFFSET_HEAD)
    end = data.find(b",", start)
    return int(data[start : end if end > 0 else -1])


def timestamp_of(data: bytes) -> float:
    """The publish time (``"ts"``, last field of a chunk frame), or 0.0 if there is none.

    A byte search instead of a JSON decode: this runs once per relayed event.
    """
    at = data.rfind(_TS_FIELD)
    if at < 0:
        return 0.0
    try:
        return float(data[at + len(_TS_FIELD) : -1])
    except ValueError:
        return 0.0
