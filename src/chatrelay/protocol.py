"""Wire types: WebSocket frames, REST bodies, the gateway -> worker calls.

This module is the one place where the gateway and the worker meet (with the
engine and the store). ``docs/protocol.md`` explains the same contract in
words; change both together.

Client frames are parsed by :func:`parse_client_frame`, which raises
:class:`FrameError` with the protocol's error code. Server frames are plain
dicts built by the ``*_frame`` functions, encoded once with orjson.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import uuid_utils
from pydantic import BaseModel, Field

PROTOCOL_VERSION = 1
SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
MAX_CLIENT_ID_CHARS = 64
CLIENT_FRAME_TYPES = frozenset({"chat", "cancel", "resume", "ping"})

MessageStatus = Literal["complete", "streaming", "completed", "cancelled", "failed", "interrupted"]
FinalStatus = Literal["completed", "cancelled", "failed", "interrupted"]
FINAL_STATUSES: frozenset[str] = frozenset({"completed", "cancelled", "failed", "interrupted"})


def new_id() -> str:
    """A time-ordered unique id (UUIDv7) for messages and sessions."""
    return str(uuid_utils.uuid7())


def now_iso() -> str:
    """The current time as ISO 8601 with a UTC offset."""
    return datetime.now(UTC).isoformat()


def valid_session_id(value: object) -> bool:
    return isinstance(value, str) and SESSION_ID_PATTERN.match(value) is not None


# -- client -> server ------------------------------------------------------------


class FrameError(Exception):
    """A client frame that breaks the protocol; ``code`` is the error code to send."""

    def __init__(self, code: str, detail: str, client_id: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_id = client_id


class ChatFrame(BaseModel):
    type: Literal["chat"] = "chat"
    content: str
    client_id: str | None = None


class CancelFrame(BaseModel):
    type: Literal["cancel"] = "cancel"
    message_id: str


class ResumeFrame(BaseModel):
    type: Literal["resume"] = "resume"
    epoch: str
    offset: int


class PingFrame(BaseModel):
    type: Literal["ping"] = "ping"


ClientFrame = ChatFrame | CancelFrame | ResumeFrame | PingFrame


def _string_field(data: dict[str, Any], name: str, *, limit: int | None = None) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise FrameError("invalid_message", f"'{name}' must be a string")
    if limit is not None and len(value) > limit:
        raise FrameError("invalid_message", f"'{name}' is longer than {limit} characters")
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
    if kind not in CLIENT_FRAME_TYPES:
        raise FrameError("unknown_type", f"unknown frame type {kind!r}")
    if kind == "ping":
        return PingFrame()
    if kind == "chat":
        client_id = data.get("client_id")
        if client_id is not None and (
            not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID_CHARS
        ):
            raise FrameError(
                "invalid_message",
                f"'client_id' must be a string of at most {MAX_CLIENT_ID_CHARS} characters",
            )
        try:
            content = _string_field(data, "content", limit=max_content_chars)
        except FrameError as exc:
            exc.client_id = client_id
            raise
        if not content.strip():
            raise FrameError("invalid_message", "'content' is empty", client_id)
        return ChatFrame(content=content, client_id=client_id)
    if kind == "cancel":
        return CancelFrame(message_id=_string_field(data, "message_id", limit=128))
    epoch = _string_field(data, "epoch", limit=128)
    offset = data.get("offset")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise FrameError("invalid_message", "'offset' must be a non-negative integer")
    return ResumeFrame(epoch=epoch, offset=offset)


# -- server -> client --------------------------------------------------------------


def message_object(
    *,
    message_id: str,
    session_id: str,
    role: Literal["user", "assistant"],
    content: str,
    status: MessageStatus,
    created_at: str,
    client_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``message`` object as PROTOCOL.md defines it."""
    body: dict[str, Any] = {
        "id": message_id,
        "session_id": session_id,
        "role": role,
        "content": content,
        "status": status,
        "created_at": created_at,
    }
    if client_id is not None:
        body["client_id"] = client_id
    body.update({key: value for key, value in extra.items() if value is not None})
    return body


def welcome_frame(node: str, session_id: str, user_id: str, epoch: str, offset: int) -> dict[str, Any]:
    return {
        "type": "welcome",
        "node": node,
        "session_id": session_id,
        "user_id": user_id,
        "epoch": epoch,
        "offset": offset,
        "protocol": PROTOCOL_VERSION,
    }


def message_frame(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message appeared (published through the engine, which adds ``offset``)."""
    return {"type": "message", "message": message}


def chunk_frame(message_id: str, seq: int, delta: str, ts: float) -> dict[str, Any]:
    """A chunk; ``ts`` (its publish time, Unix seconds) stays last: metrics find it there."""
    return {"type": "chunk", "message_id": message_id, "seq": seq, "delta": delta, "ts": ts}


def complete_frame(
    message_id: str,
    status: FinalStatus,
    content: str,
    error: str | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    frame: dict[str, Any] = {
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
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
    if client_id is not None:
        frame["client_id"] = client_id
    if message_id is not None:
        frame["message_id"] = message_id
    return frame


PONG_FRAME = orjson.dumps({"type": "pong"})


def reconnect_frame(reason: str) -> dict[str, Any]:
    return {"type": "reconnect", "reason": reason}


def reset_frame(epoch: str, offset: int) -> dict[str, Any]:
    return {"type": "reset", "epoch": epoch, "offset": offset}


# -- REST bodies (gateway) -----------------------------------------------------------


class ChatBody(BaseModel):
    """``POST /api/chat``."""

    message: str = Field(min_length=1)
    session_id: str = Field(pattern=SESSION_ID_PATTERN.pattern)


class CancelBody(BaseModel):
    """``POST /api/cancel``."""

    session_id: str = Field(pattern=SESSION_ID_PATTERN.pattern)
    message_id: str = Field(min_length=1, max_length=128)


class ChatAccepted(BaseModel):
    """Answer to a chat request (gateway REST and worker ``POST /chat``)."""

    message_id: str
    session_id: str
    status: Literal["streaming"] = "streaming"
    user_message_id: str | None = None


# -- gateway -> worker ---------------------------------------------------------------

# Gateway -> worker calls carry the shared internal token in this header.
INTERNAL_TOKEN_HEADER = "X-Internal-Token"


class GenerationRequest(BaseModel):
    """``POST /chat`` on a worker; the seed's body plus ids chosen by the caller.

    ``message_id`` names the assistant message; a request repeated with the
    same ``message_id`` never starts a second generation.
    """

    session_id: str = Field(pattern=SESSION_ID_PATTERN.pattern)
    user_id: str = Field(min_length=1, max_length=128)
    message: str = Field(min_length=1)
    message_id: str = Field(default_factory=new_id, min_length=1, max_length=128)
    user_message_id: str = Field(default_factory=new_id, min_length=1, max_length=128)
    client_id: str | None = Field(None, max_length=MAX_CLIENT_ID_CHARS)


class CancelRequest(BaseModel):
    """``POST /cancel`` on a worker (works on any worker)."""

    session_id: str = Field(pattern=SESSION_ID_PATTERN.pattern)
    message_id: str = Field(min_length=1, max_length=128)


def partial_texts(events: Iterable[Any], message_ids: Iterable[str]) -> dict[str, str]:
    """The text each of ``message_ids`` has so far, from a session log's events."""
    parts: dict[str, list[str]] = {message_id: [] for message_id in message_ids}
    for event in events:
        frame = orjson.loads(event.data)
        if frame.get("type") == "chunk" and frame.get("message_id") in parts:
            parts[frame["message_id"]].append(frame["delta"])
    return {message_id: "".join(deltas) for message_id, deltas in parts.items()}


def generation_lease_key(session_id: str) -> str:
    """The lease that allows one generation per session at a time."""
    return f"generation:{session_id}"


GENERATION_LEASE_PREFIX = "generation:"
