"""Client -> server: ids, the frames a client sends, and their parser.

Client frames are pydantic models parsed by :func:`parse_client_frame`, which
raises :class:`~chatrelay.exceptions.FrameError` with the protocol's error code.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import orjson
import uuid_utils
from pydantic import BaseModel, ConfigDict, Field

# pydantic reads TypedDicts (for the JSON Schema) only from typing_extensions before 3.12.
from chatrelay.exceptions import FrameError

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


def generation_lease_key(session_id: str) -> str:
    """The lease that allows one generation per session at a time.

    Here because both sides read it: the worker holds it, the gateway's quotas
    and the reaper ask who holds it.
    """
    return f"generation:{session_id}"


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
    #: The client takes ``snapshot`` frames (v1.1): the answer streaming may come as
    #: one instead of its chunks. Without it, a resume is answered as in v1.
    snapshot: bool = False


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
    snapshot = data.get("snapshot", False)
    if not isinstance(snapshot, bool):
        raise FrameError("invalid_message", "'snapshot' must be true or false")
    return ResumeFrame(epoch=epoch, offset=offset, snapshot=snapshot)
