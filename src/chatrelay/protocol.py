"""Wire types: the WebSocket frames, both ways, and the session log's events.

This module is the one place where the gateway and the worker meet (with the
engine and the store). ``docs/protocol.md`` explains the same contract in
words; change both together.

Client frames are pydantic models parsed by :func:`parse_client_frame`, which
raises :class:`~chatrelay.exceptions.FrameError` with the protocol's error
code. Server frames are TypedDicts built by the ``*_frame`` functions and
encoded once with orjson; ``chatrelay.wire_client`` reads them. REST bodies
are in ``chatrelay.rest``; ``chatrelay.wire_schema`` exports all of them as
JSON Schema (``make schema``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal, NotRequired, cast

import orjson
import uuid_utils
from pydantic import BaseModel, ConfigDict, Field

# pydantic reads TypedDicts (for the JSON Schema) only from typing_extensions before 3.12.
from typing_extensions import TypedDict

from chatrelay.exceptions import FrameError
from chatrelay.store.records import FinalStatus, MessageRecord, MessageStatus, Role

PROTOCOL_VERSION = 1
# Starts with a letter or digit: ``.`` and ``..`` would be path segments in a URL.
SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
SESSION_ID_RULE = "1 to 128 of [A-Za-z0-9_.:-], starting with a letter or digit"
MAX_CLIENT_ID_CHARS = 64
# Message ids and epochs are ours (UUIDs, hex); anything longer is not one.
MAX_ID_CHARS = 128
CLIENT_FRAME_TYPES = frozenset({"chat", "cancel", "resume", "ping", "refresh"})
# Tickets are ``secrets.token_urlsafe`` strings (43 characters); anything longer is not one.
MAX_TICKET_CHARS = 128


def new_id() -> str:
    """A time-ordered unique id (UUIDv7) for messages and sessions."""
    return str(uuid_utils.uuid7())


def valid_session_id(value: object) -> bool:
    """Whether ``value`` is a session (or dev user) id: see ``SESSION_ID_RULE``."""
    return isinstance(value, str) and SESSION_ID_PATTERN.match(value) is not None


def unstorable(text: str) -> str | None:
    """Why the stores cannot keep ``text`` (PostgreSQL refuses NUL in text, and a
    lone surrogate has no UTF-8 encoding), or None when they can."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "contains a lone surrogate"
    return None


# -- client -> server ------------------------------------------------------------


class _ClientFrameModel(BaseModel):
    # The schema marks ``type`` required (a default is for building frames in Python).
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class ChatFrame(_ClientFrameModel):
    type: Literal["chat"] = "chat"
    content: str
    client_id: str | None = None


class CancelFrame(_ClientFrameModel):
    type: Literal["cancel"] = "cancel"
    message_id: str


class ResumeFrame(_ClientFrameModel):
    type: Literal["resume"] = "resume"
    epoch: str
    offset: int


class PingFrame(_ClientFrameModel):
    type: Literal["ping"] = "ping"


class RefreshFrame(_ClientFrameModel):
    """A new ticket (``POST /api/ws-ticket``) that moves the socket's expiry (v1.1)."""

    type: Literal["refresh"] = "refresh"
    ticket: str


ClientFrame = Annotated[
    ChatFrame | CancelFrame | ResumeFrame | PingFrame | RefreshFrame, Field(discriminator="type")
]


def _string_field(data: dict[str, Any], name: str, limit: int, client_id: str | None = None) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise FrameError("invalid_message", f"'{name}' must be a string", client_id)
    if len(value) > limit:
        raise FrameError(
            "invalid_message", f"'{name}' is longer than {limit} characters", client_id
        )
    return value


def parse_client_frame(raw: str | bytes, max_content_chars: int) -> ClientFrame:
    """Parse and validate one client frame, or raise :class:`FrameError`."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError("bad_frame", f"frame is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise FrameError("bad_frame", "frame must be a JSON object")
    kind = data.get("type")
    if kind is None:
        raise FrameError("bad_frame", "frame has no 'type'")
    if not isinstance(kind, str):
        raise FrameError("bad_frame", "'type' must be a string")
    if kind not in CLIENT_FRAME_TYPES:
        raise FrameError("unknown_type", f"unknown frame type {kind!r}")
    if kind == "ping":
        return PingFrame()
    if kind == "chat":
        client_id = data.get("client_id")
        if client_id is not None and (
            not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID_CHARS
        ):
            detail = f"'client_id' must be a string of at most {MAX_CLIENT_ID_CHARS} characters"
            raise FrameError("invalid_message", detail)
        content = _string_field(data, "content", max_content_chars, client_id)
        if not content.strip():
            raise FrameError("invalid_message", "'content' is empty", client_id)
        return ChatFrame(content=content, client_id=client_id)
    if kind == "cancel":
        message_id = _string_field(data, "message_id", MAX_ID_CHARS)
        if not valid_session_id(message_id):  # message ids share the id alphabet
            raise FrameError("invalid_message", f"'message_id' must match {SESSION_ID_RULE}")
        return CancelFrame(message_id=message_id)
    if kind == "refresh":
        return RefreshFrame(ticket=_string_field(data, "ticket", MAX_TICKET_CHARS))
    epoch = _string_field(data, "epoch", MAX_ID_CHARS)
    offset = data.get("offset")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise FrameError("invalid_message", "'offset' must be a non-negative integer")
    return ResumeFrame(epoch=epoch, offset=offset)


# -- server -> client --------------------------------------------------------------
# TypedDicts: a chunk is built per model delta, so no pydantic round trip. The
# worker publishes ``*Event``s; the engine numbers them, the frame has the ``offset``.


class Usage(TypedDict):
    """What an answer cost: its model, deltas, time to first token and duration."""

    model: str
    tokens: int
    ttft_ms: float | None
    duration_ms: float


class WireMessage(TypedDict):
    """A stored message, in ``message`` frames and REST history."""

    id: str
    session_id: str
    role: Role
    content: str
    status: MessageStatus
    created_at: str
    client_id: NotRequired[str]
    error: NotRequired[str]
    model: NotRequired[str]
    usage: NotRequired[Usage]


class WelcomeFrame(TypedDict):
    """The first frame of a socket; ``offset`` is the newest of the session log."""

    type: Literal["welcome"]
    node: str
    session_id: str
    user_id: str
    epoch: str
    offset: int
    protocol: int


class MessageEvent(TypedDict):
    """A stored message appeared: a user's, or an answer starting (``streaming``)."""

    type: Literal["message"]
    message: WireMessage


class MessageFrame(MessageEvent):
    offset: int


class ChunkEvent(TypedDict):
    """The next delta of an answer; ``seq`` counts 1, 2, 3 within it."""

    type: Literal["chunk"]
    message_id: str
    seq: int
    delta: str
    ts: float


class ChunkFrame(ChunkEvent):
    offset: int


class CompleteEvent(TypedDict):
    """An answer ended; ``content`` is its whole text as stored."""

    type: Literal["complete"]
    message_id: str
    status: FinalStatus
    content: str
    error: NotRequired[str]
    usage: NotRequired[Usage]


class CompleteFrame(CompleteEvent):
    offset: int


class ErrorFrame(TypedDict):
    """A request of this client failed; the socket stays open."""

    type: Literal["error"]
    code: str
    detail: str
    client_id: NotRequired[str]
    message_id: NotRequired[str]


class PongFrame(TypedDict):
    type: Literal["pong"]


class ReconnectFrame(TypedDict):
    """This node is going away: connect again (any node) and resume."""

    type: Literal["reconnect"]
    reason: str


class ResetFrame(TypedDict):
    """The log from the client's position is gone: reload history, go on from here."""

    type: Literal["reset"]
    epoch: str
    offset: int


ServerFrame = Annotated[
    WelcomeFrame
    | MessageFrame
    | ChunkFrame
    | CompleteFrame
    | ErrorFrame
    | PongFrame
    | ReconnectFrame
    | ResetFrame,
    Field(discriminator="type"),
]


def wire_message(record: MessageRecord) -> WireMessage:
    """A stored message as the wire shows it (fields the store has not are left out)."""
    message: WireMessage = {
        "id": record.id,
        "session_id": record.session_id,
        "role": record.role,
        "content": record.content,
        "status": record.status,
        "created_at": record.created_at.isoformat(),
    }
    if record.client_id is not None:
        message["client_id"] = record.client_id
    if record.error is not None:
        message["error"] = record.error
    if record.model is not None:
        message["model"] = record.model
    if record.usage is not None:
        message["usage"] = cast(Usage, record.usage)
    return message


def welcome_frame(
    node: str, session_id: str, user_id: str, epoch: str, offset: int
) -> WelcomeFrame:
    return {
        "type": "welcome",
        "node": node,
        "session_id": session_id,
        "user_id": user_id,
        "epoch": epoch,
        "offset": offset,
        "protocol": PROTOCOL_VERSION,
    }


def message_frame(message: MessageRecord) -> MessageEvent:
    """A stored message appeared (published through the engine, which adds ``offset``)."""
    return {"type": "message", "message": wire_message(message)}


def chunk_frame(message_id: str, seq: int, delta: str, ts: float) -> ChunkEvent:
    """A chunk; ``ts`` (its publish time, Unix seconds) stays last: metrics find it there."""
    return {"type": "chunk", "message_id": message_id, "seq": seq, "delta": delta, "ts": ts}


def complete_frame(
    message_id: str,
    status: FinalStatus,
    content: str,
    error: str | None = None,
    usage: Usage | None = None,
) -> CompleteEvent:
    frame: CompleteEvent = {
        "type": "complete",
        "message_id": message_id,
        "status": status,
        "content": content,
    }
    if error is not None:
        frame["error"] = error
    if usage is not None:
        frame["usage"] = usage
    return frame


def error_frame(
    code: str, detail: str, client_id: str | None = None, message_id: str | None = None
) -> ErrorFrame:
    frame: ErrorFrame = {"type": "error", "code": code, "detail": detail}
    if client_id is not None:
        frame["client_id"] = client_id
    if message_id is not None:
        frame["message_id"] = message_id
    return frame


PONG_FRAME = orjson.dumps(PongFrame(type="pong"))


def reconnect_frame(reason: str) -> ReconnectFrame:
    return {"type": "reconnect", "reason": reason}


def reset_frame(epoch: str, offset: int) -> ResetFrame:
    return {"type": "reset", "epoch": epoch, "offset": offset}


# -- session logs ------------------------------------------------------------------


def partial_texts(events: Iterable[Any], message_ids: Iterable[str]) -> dict[str, str]:
    """The text each of ``message_ids`` has so far, from a session log's events.

    Only answers the log holds from their first chunk on (``seq`` 1, none
    missing) are in the result: a trimmed log holds the end of an answer,
    which is never a beginning to show or store.
    """
    parts: dict[str, list[str]] = {message_id: [] for message_id in message_ids}
    for event in events:
        frame = orjson.loads(event.data)
        deltas = parts.get(frame.get("message_id")) if frame.get("type") == "chunk" else None
        if deltas is None:
            continue
        if frame.get("seq") == len(deltas) + 1:
            deltas.append(frame["delta"])
        else:
            del parts[frame["message_id"]]  # its beginning is gone from the log
    return {message_id: "".join(deltas) for message_id, deltas in parts.items()}
