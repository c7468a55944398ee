"""Server -> client: the frames a gateway sends, their builders, and session-log reading.

Server frames are TypedDicts built by the ``*_frame`` functions and encoded
once with orjson (a chunk is built per model delta: no pydantic round trip);
``chatrelay.wire_client`` reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, NotRequired, cast

import orjson
from pydantic import Field

# pydantic reads TypedDicts (for the JSON Schema) only from typing_extensions before 3.12.
from typing_extensions import TypedDict

from chatrelay import metrics
from chatrelay.protocol.client_frames import PROTOCOL_VERSION
from chatrelay.store.records import FinalStatus, MessageRecord, MessageStatus, Role

# -- server -> client --------------------------------------------------------------
# TypedDicts: a chunk is built per model delta, so no pydantic round trip. The
# worker publishes ``*Event``s; the engine numbers them, the frame has the ``offset``.


class Resumed(TypedDict):
    """Where a continued answer resumed: after chunk ``seq``, at log offset ``offset``."""

    seq: int
    offset: int


class Usage(TypedDict):
    """What an answer cost: its model, deltas, time to first token and duration.

    A continued answer (its worker stopped, another one went on) also says how
    many times it was continued and where each continuation resumed.
    """

    model: str
    tokens: int
    ttft_ms: float | None
    duration_ms: float
    continued: NotRequired[int]
    resumed: NotRequired[list[Resumed]]


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
    #: An answer's user message; answers that share it are alternatives (v1.1).
    reply_to: NotRequired[str]
    #: The message it follows (null: the first); messages that share one are versions
    #: of each other: an edited question's, a regenerated answer's (v1.1).
    parent_id: NotRequired[str | None]


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
    #: (v1.1, coalesced, only to a socket that asked with ``coalesce=1``) the
    #: first offset and ``seq`` the frame covers: its ``delta`` is the deltas of
    #: chunks ``from_seq`` .. ``seq`` at offsets ``from_offset`` .. ``offset``, joined.
    from_offset: NotRequired[int]
    from_seq: NotRequired[int]


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


class SnapshotFrame(TypedDict):
    """The text of an answer still streaming, as of ``offset`` (v1.1).

    Sent to a socket that joins or resumes mid-answer instead of a replay of
    every chunk so far: every chunk of ``message_id`` up to ``offset`` (its
    ``seq`` up to ``seq``) is folded into ``text``. A text too long for one
    frame comes as ``parts`` frames with the same ``offset``, ``part`` 1, 2 ...;
    their texts joined are the answer's text. Live chunks go on at ``offset`` + 1.
    """

    type: Literal["snapshot"]
    offset: int
    message_id: str
    seq: int
    text: str
    part: int
    parts: int


class DeletedEvent(TypedDict):
    """The session was deleted by its owner: every socket of it should leave it (v1.1)."""

    type: Literal["deleted"]
    session_id: str


class DeletedFrame(DeletedEvent):
    offset: int


ServerFrame = Annotated[
    WelcomeFrame
    | MessageFrame
    | ChunkFrame
    | CompleteFrame
    | ErrorFrame
    | PongFrame
    | ReconnectFrame
    | ResetFrame
    | SnapshotFrame
    | DeletedFrame,
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
    if record.usage is not None and record.status != "streaming":  # a checkpoint's, while streaming
        message["usage"] = cast(Usage, record.usage)
    if record.reply_to is not None:
        message["reply_to"] = record.reply_to
    message["parent_id"] = record.parent_id
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
    metrics.ERRORS.labels(code).inc()
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


def snapshot_frames(message_id: str, offset: int, seq: int, text: str, limit: int) -> list[bytes]:
    """The ``snapshot`` frames of ``text``, encoded, each at most ``limit`` bytes."""
    envelope: SnapshotFrame = {
        "type": "snapshot",
        "offset": offset,
        "message_id": message_id,
        "seq": seq,
        "text": "",
        "part": 10**9,
        "parts": 10**9,
    }
    budget = limit - len(orjson.dumps(envelope))
    if budget < 64:
        raise ValueError(f"a frame limit of {limit} bytes leaves no room for a snapshot's text")
    pieces = split_for_json(text, budget)
    return [
        orjson.dumps({**envelope, "text": piece, "part": part, "parts": len(pieces)})
        for part, piece in enumerate(pieces, start=1)
    ]


def split_for_json(text: str, budget: int) -> list[str]:
    """``text`` cut into pieces whose JSON string bodies are at most ``budget`` bytes
    (escapes and UTF-8 counted); at least one piece, joined they are ``text``."""
    pieces: list[str] = []
    start = 0
    while start < len(text) or not pieces:
        end = min(len(text), start + budget)
        size = len(orjson.dumps(text[start:end])) - 2
        while size > budget:
            # Shrink in proportion; a character is at most 6 bytes, so this ends.
            end = start + max(1, (end - start) * budget // size)
            size = len(orjson.dumps(text[start:end])) - 2
        pieces.append(text[start:end])
        start = end
    return pieces


def deleted_frame(session_id: str) -> DeletedEvent:
    """The last event of a deleted session's log (published through the engine)."""
    return {"type": "deleted", "session_id": session_id}


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
