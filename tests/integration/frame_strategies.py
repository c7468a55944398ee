"""Hypothesis strategies for hostile client frames, each with the answers PROTOCOL allows.

A :class:`FuzzFrame` is one WebSocket message a client could send (a text
frame, a binary frame, or a text frame whose bytes are not UTF-8) and the set
of outcomes docs/protocol.md allows for it, in the vocabulary of
:func:`outcome`: ``pong``, ``reset``, ``none`` (no answer of its own, as for an
accepted chat), ``error:<code>`` or ``close:<code>``. The oracle is written
from the protocol document, not from the parser: a frame is judged by what it
is (valid, wrong type, missing field, too long, too big), never by what
``parse_client_frame`` happens to do with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from hypothesis import strategies as st
from hypothesis.vendor.pretty import RepresentationPrinter

from chatrelay.protocol.client_frames import MAX_CLIENT_ID_CHARS, SESSION_ID_PATTERN

# How a message travels: text (str), binary (bytes), or a text frame with raw bytes.
Transport = Literal["text", "binary", "raw_text"]
# Longest message id or epoch the protocol accepts (ours are UUIDs and hex).
MAX_ID_CHARS = 128
# RFC 6455: a text frame that is not UTF-8 ends the connection with 1007.
CLOSE_INVALID_PAYLOAD = 1007
# orjson (the gateway's parser) refuses nesting past 1,024 levels; stay clear of it
# both ways, so a nested value is either surely parsed or surely refused.
SHALLOW_DEPTH = 40
DEEP_DEPTH = (2_000, 6_000)
# Offsets past a 64-bit integer: still integers ≥ 0 to the protocol, not to every parser.
U64 = 2**64
# JSON values of every kind, small: extra fields, wrong-typed fields.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
CLIENT_TYPES = ("chat", "cancel", "resume", "ping", "refresh")
# One frame in this many is not UTF-8, one is a chat near the character limit, one is
# padded to near the frame limit: those may close the socket, and a reconnect each is
# the campaign's main cost.
ROLL_SIDES = 80

# How much of a frame its repr shows.
REPR_BYTES = 120

PONG = "pong"
RESET = "reset"
NONE = "none"


def error(code: str) -> str:
    return f"error:{code}"


def closed(code: int) -> str:
    return f"close:{code}"


BAD_FRAME = error("bad_frame")
UNKNOWN_TYPE = error("unknown_type")
INVALID = error("invalid_message")
# A chat the rules may refuse for reasons of the moment: an answer is running, or
# the user's chat budget is spent. Neither is about the frame.
CHAT_ANSWERS = frozenset({NONE, error("busy"), error("rate_limited")})
# A cancel of an id that is not running in the session (nothing else runs there by that id).
CANCEL_ANSWERS = frozenset({error("not_found"), NONE})
# A resume of an epoch the server never gave: reset; a socket whose session nobody owns
# yet has no log to replay and may say nothing.
RESUME_ANSWERS = frozenset({RESET, NONE})


@dataclass(frozen=True, repr=False)
class FuzzFrame:
    """One client message and the outcomes the protocol allows for it."""

    label: str
    payload: str | bytes
    transport: Transport
    expected: frozenset[str]

    def __repr__(self) -> str:
        # Short: Hypothesis writes examples' reprs, and a frame may be 200 kB.
        shown = self.payload if self.size <= REPR_BYTES else self.payload[:REPR_BYTES]
        return f"<{self.label}, {self.transport}, {self.size} bytes: {shown!r}>"

    def _repr_pretty_(self, printer: RepresentationPrinter, cycle: bool) -> None:
        # Hypothesis prints a dataclass field by field unless it has this.
        printer.text(repr(self))

    @property
    def size(self) -> int:
        """Its length on the wire, in bytes (the frame limit counts these)."""
        return len(self.payload.encode()) if isinstance(self.payload, str) else len(self.payload)


def encode(frame: Mapping[str, object], ascii_only: bool = False) -> str:
    """Compact JSON, as a careful client sends it (or with ``\\u`` escapes, as Python's
    default does). ``json`` rather than orjson: it writes integers of any size."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=ascii_only)


def judged(label: str, frame: Mapping[str, object], expected: frozenset[str]) -> FuzzFrame:
    return FuzzFrame(label, encode(frame), "text", expected)


def storable(text: str) -> bool:
    """Whether both stores can keep ``text``: PostgreSQL refuses NUL in text."""
    return "\x00" not in text


def chat_answers(content: object, client_id: object, max_chars: int) -> frozenset[str]:
    """What a ``chat`` with these fields may get (docs/protocol.md, "Client to server")."""
    if client_id is not None and (
        not isinstance(client_id, str)
        or len(client_id) > MAX_CLIENT_ID_CHARS
        or not storable(client_id)
    ):
        return frozenset({INVALID})
    if not isinstance(content, str) or not content.strip() or len(content) > max_chars:
        return frozenset({INVALID})
    if not storable(content):
        return frozenset({INVALID})
    return CHAT_ANSWERS


# -- valid frames, and each with one field broken -----------------------------------


@st.composite
def chats(draw: st.DrawFn, max_chars: int) -> FuzzFrame:
    """Chats: mostly valid, some with empty, blank, NUL or wrong-typed fields."""
    content = draw(
        st.text(min_size=1, max_size=40)
        | st.sampled_from(["", " ", "\t\n", "\u3000", "a\x00b", "\x00"])
        | JSON_VALUES
    )
    client_id = draw(
        st.none()
        | st.text(max_size=MAX_CLIENT_ID_CHARS + 2)
        | st.just("c\x00")
        | st.integers()
        | st.lists(st.integers(), max_size=2)
    )
    frame: dict[str, object] = {"type": "chat", "content": content}
    if client_id is not None or draw(st.booleans()):
        frame["client_id"] = client_id
    return judged("chat", frame, chat_answers(content, client_id, max_chars))


@st.composite
def cancels(draw: st.DrawFn) -> FuzzFrame:
    message_id = draw(
        st.text(max_size=MAX_ID_CHARS + 2) | st.uuids().map(str) | st.just("") | JSON_VALUES
    )
    frame = {"type": "cancel", "message_id": message_id}
    if not isinstance(message_id, str) or not SESSION_ID_PATTERN.match(message_id):
        # docs/protocol.md: a message id is written like a session id, else invalid_message.
        return judged("cancel of a malformed id", frame, frozenset({INVALID}))
    return judged("cancel", frame, CANCEL_ANSWERS)


@st.composite
def resumes(draw: st.DrawFn) -> FuzzFrame:
    """Resumes of epochs the server never gave, with offsets small, huge and negative."""
    epoch = draw(st.text(max_size=MAX_ID_CHARS + 2) | st.uuids().map(lambda u: u.hex) | SCALARS)
    offset = draw(
        st.integers(min_value=0, max_value=1_000)
        | st.integers(min_value=2**62, max_value=U64 - 1)
        | st.integers(min_value=U64, max_value=10**30)
        | st.integers(max_value=-1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.booleans()
        | st.text(max_size=4)
        | st.none()
    )
    frame = {"type": "resume", "epoch": epoch, "offset": offset}
    if not isinstance(epoch, str) or len(epoch) > MAX_ID_CHARS:
        return judged("resume", frame, frozenset({INVALID}))
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        return judged("resume", frame, frozenset({INVALID}))
    if offset >= U64:
        # An integer ≥ 0 that no 64-bit log offset can reach: reset, or refused as invalid.
        return judged("resume huge", frame, RESUME_ANSWERS | {INVALID})
    return judged("resume", frame, RESUME_ANSWERS)


def valid_frames(max_chars: int) -> st.SearchStrategy[FuzzFrame]:
    return (
        chats(max_chars)
        | cancels()
        | resumes()
        | st.just(judged("ping", {"type": "ping"}, frozenset({PONG})))
    )


@st.composite
def with_extra_fields(draw: st.DrawFn, valid: st.SearchStrategy[FuzzFrame]) -> FuzzFrame:
    """A frame with fields the protocol does not name: they are ignored."""
    base = draw(valid)
    frame = json.loads(base.payload)
    extras = draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, min_size=1, max_size=4))
    frame.update({key: value for key, value in extras.items() if key not in frame})
    return judged(f"{base.label} + extra fields", frame, base.expected)


@st.composite
def missing_fields(draw: st.DrawFn) -> FuzzFrame:
    """A chat, cancel or resume without one of its required fields."""
    incomplete: list[dict[str, object]] = [
        {"type": "chat", "client_id": "c-1"},
        {"type": "cancel"},
        {"type": "resume", "offset": 0},
        {"type": "resume", "epoch": "e"},
    ]
    frame = draw(st.sampled_from(incomplete))
    return judged(f"{frame['type']} missing a field", frame, frozenset({INVALID}))


# -- frames that are not frames ------------------------------------------------------


@st.composite
def wrong_types(draw: st.DrawFn) -> FuzzFrame:
    """``type`` missing, of the wrong JSON type, or a string that names no frame."""
    choice = draw(st.sampled_from(["missing", "not a string", "unknown"]))
    fields = draw(st.dictionaries(st.sampled_from(["content", "message_id", "x"]), SCALARS))
    if choice == "missing":
        return judged("no type", fields, frozenset({BAD_FRAME}))
    if choice == "not a string":
        kind = draw(
            st.none()
            | st.integers()
            | st.booleans()
            | st.floats(allow_nan=False)
            | st.lists(SCALARS, max_size=3)
            | st.dictionaries(st.text(max_size=4), SCALARS, max_size=3)
        )
        # A type that is not even a string breaks the frame; ``unknown_type`` says so too.
        return judged(
            "type not a string", {**fields, "type": kind}, frozenset({BAD_FRAME, UNKNOWN_TYPE})
        )
    name = draw(
        st.text(max_size=20).filter(lambda text: text not in CLIENT_TYPES)
        | st.sampled_from(["Chat", "PING", " ping", "chat\x00", "welcome", "error", "pong"])
    )
    return judged("unknown type", {**fields, "type": name}, frozenset({UNKNOWN_TYPE}))


@st.composite
def not_json(draw: st.DrawFn) -> FuzzFrame:
    """Text that is not JSON, or JSON that is not an object."""
    text = draw(
        st.text(max_size=30).filter(_not_json)
        | st.sampled_from(
            [
                "",
                "{",
                '{"type": "ping"',
                "{'type': 'ping'}",
                '{"type": NaN}',
                '{"type": "resume", "epoch": "e", "offset": Infinity}',
                '{"type": "resume", "epoch": "e", "offset": 1e400}',
                '{"type": "chat", "content": "\\ud800"}',
                '{"type": "ping"}{"type": "ping"}',
            ]
        )
        | JSON_VALUES.filter(lambda value: not isinstance(value, dict)).map(json.dumps)
    )
    expected = {BAD_FRAME}
    if "\\ud800" in text:
        # A lone surrogate is valid JSON but no string a store keeps.
        expected.add(INVALID)
    return FuzzFrame("not a JSON object", text, "text", frozenset(expected))


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


@st.composite
def deep_nesting(draw: st.DrawFn) -> FuzzFrame:
    """Arrays and objects nested shallow (parsed) or past any sane depth (refused)."""
    deep = draw(st.booleans())
    depth = draw(st.integers(*DEEP_DEPTH) if deep else st.integers(1, SHALLOW_DEPTH))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    nested = opener * depth + "1" + closer * depth
    where = draw(st.sampled_from(["frame", "extra field of a ping", "chat content", "type"]))
    if where == "frame":
        text, expected = nested, {BAD_FRAME}
    elif where == "extra field of a ping":
        text, expected = '{"type":"ping","x":' + nested + "}", {PONG}
    elif where == "chat content":
        text, expected = '{"type":"chat","content":' + nested + "}", {INVALID}
    else:
        text, expected = '{"type":' + nested + "}", {BAD_FRAME, UNKNOWN_TYPE}
    if deep:
        expected = {BAD_FRAME}
    return FuzzFrame(
        f"nested {'deep' if deep else 'shallow'} in {where}", text, "text", frozenset(expected)
    )


# -- sizes: the message limit and the frame limit ------------------------------------


@st.composite
def long_chats(draw: st.DrawFn, max_chars: int, max_bytes: int) -> FuzzFrame:
    """Chats around the character limit, in characters of 1 to 4 UTF-8 bytes, sent
    compact or with ``\\u`` escapes; a frame over the byte limit is closed with 1009."""
    char = draw(st.sampled_from(["x", "é", "€", "😀"]))
    length = max_chars + draw(st.integers(-2, 1))
    content = char * length
    payload = encode({"type": "chat", "content": content}, ascii_only=draw(st.booleans()))
    return _sized(
        "chat near the character limit", payload, chat_answers(content, None, max_chars), max_bytes
    )


@st.composite
def sized_frames(
    draw: st.DrawFn, frames: st.SearchStrategy[FuzzFrame], max_bytes: int
) -> FuzzFrame:
    """A valid or bad frame padded with an extra field to a few bytes around the limit."""
    base = draw(frames)
    target = max_bytes + draw(st.integers(-2, 2) | st.integers(3, 200_000))
    frame = json.loads(base.payload)
    if not isinstance(frame, dict):  # pragma: no cover - both strategies make objects
        return base
    frame["pad"] = ""
    frame["pad"] = "p" * max(0, target - len(encode(frame).encode()))
    return _sized(f"{base.label} padded to {target} bytes", encode(frame), base.expected, max_bytes)


def _sized(label: str, payload: str, expected: frozenset[str], max_bytes: int) -> FuzzFrame:
    if len(payload.encode()) > max_bytes:
        expected = frozenset({closed(1009)})
    return FuzzFrame(label, payload, "text", expected)


# -- transports: binary and invalid UTF-8 ---------------------------------------------


@st.composite
def binary_frames(draw: st.DrawFn, frames: st.SearchStrategy[FuzzFrame]) -> FuzzFrame:
    """Binary frames: a frame's JSON as bytes (judged like its text), or raw bytes."""
    if draw(st.booleans()):
        base = draw(frames)
        assert isinstance(base.payload, str)
        return FuzzFrame(f"binary {base.label}", base.payload.encode(), "binary", base.expected)
    raw = draw(st.binary(max_size=40).filter(_not_json_bytes))
    return FuzzFrame("binary garbage", raw, "binary", frozenset({BAD_FRAME}))


def _not_json_bytes(raw: bytes) -> bool:
    try:
        return _not_json(raw.decode())
    except UnicodeDecodeError:
        return True


@st.composite
def invalid_utf8_text(draw: st.DrawFn) -> FuzzFrame:
    """A text frame whose bytes are not UTF-8: the WebSocket layer closes it (1007)."""
    prefix = draw(st.sampled_from([b"", b'{"type":"chat","content":"', b'{"type":"ping","x":"']))
    bad = draw(
        st.sampled_from(
            [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"]
        )
    )
    return FuzzFrame(
        "invalid UTF-8 in a text frame",
        prefix + bad + b'"}',
        "raw_text",
        frozenset({closed(CLOSE_INVALID_PAYLOAD)}),
    )


def client_frames(max_chars: int, max_bytes: int) -> st.SearchStrategy[FuzzFrame]:
    """Every kind of client frame above, weighted towards the cheap ones: a frame that
    may close the socket (too big, not UTF-8) costs a reconnect, so those are rarer
    (see ``ROLL_SIDES``). Each strategy is built once: building one per draw costs
    Hypothesis a validation each time, more than the draw."""
    valid = valid_frames(max_chars)
    objects = valid | wrong_types()
    cheap = st.one_of(
        valid,
        with_extra_fields(valid),
        missing_fields(),
        wrong_types(),
        not_json(),
        deep_nesting(),
        binary_frames(objects),
    )
    rare = {
        ROLL_SIDES // 2: invalid_utf8_text(),
        ROLL_SIDES // 2 + 1: long_chats(max_chars, max_bytes),
        ROLL_SIDES // 2 + 2: sized_frames(objects, max_bytes),
    }

    # ``one_of`` flattens and weighs its branches alike, so the weights need a draw of
    # their own; Hypothesis favours an integer's bounds, so the rare kinds sit inside.
    @st.composite
    def weighted(draw: st.DrawFn) -> FuzzFrame:
        roll = draw(st.integers(0, ROLL_SIDES - 1))
        frame: FuzzFrame = draw(rare.get(roll, cheap))
        return frame

    return weighted()
