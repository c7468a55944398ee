"""REST bodies: the gateway's public API and the gateway -> worker calls.

Requests are pydantic models (FastAPI validates them once per call); answers
the gateway builds from store records are TypedDicts, like the server frames
of ``chatrelay.protocol``. ``docs/protocol.md`` explains them in words.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from chatrelay.protocol.client_frames import (
    MAX_CLIENT_ID_CHARS,
    MAX_ID_CHARS,
    SESSION_ID_PATTERN,
    new_id,
)
from chatrelay.protocol.server_frames import WireMessage
from chatrelay.store.records import SearchHit, SessionRecord

# -- REST bodies (gateway) -----------------------------------------------------------

# What each error status means on the public API; every one answers an ``ErrorBody``.
ERROR_STATUSES: dict[int, str] = {
    400: "The body is not UTF-8 text (`bad_request`).",
    401: "No acceptable credentials (`not_authenticated`).",
    403: "The session belongs to another user (`forbidden`).",
    404: "Nothing of that name is running or stored (`not_found`).",
    409: "A generation already runs in this session (`busy`, `lease_lost`).",
    413: "The request body is over the configured size limit (default 64 KiB).",
    422: "The request breaks its schema or a limit (`invalid_message`).",
    429: "Too many messages (`rate_limited`; `Retry-After` says when to retry).",
    503: "No worker or engine could take the request (`unavailable`).",
}


class ErrorBody(BaseModel):
    """Every REST error: a machine-readable ``code`` (docs/protocol.md) and a human ``detail``."""

    code: str
    detail: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route that may answer these error statuses."""
    return {
        status: {"model": ErrorBody, "description": ERROR_STATUSES[status]} for status in statuses
    }


# What the gateway takes as a message: no NUL (the stores cannot keep it), and some
# character ``str.strip`` keeps (JSON Schema and Rust regexes leave U+001C..U+001F
# out of ``\s``; Python strips them).
MESSAGE_TEXT = r"^[^\x00]*[^\s\x00\x1c-\x1f][^\x00]*$"


class ChatBody(BaseModel):
    """``POST /api/chat``."""

    message: str = Field(
        min_length=1,
        pattern=MESSAGE_TEXT,
        description="The user's message: some non-blank text of at most"
        " CHATRELAY_MAX_MESSAGE_CHARS (default 16,000) characters.",
    )
    session_id: str = Field(pattern=SESSION_ID_PATTERN.pattern, max_length=MAX_ID_CHARS)


class RegenerateBody(BaseModel):
    """``POST /api/regenerate``: answer again the user message that ``message_id`` answered."""

    session_id: str = Field(pattern=SESSION_ID_PATTERN.pattern, max_length=MAX_ID_CHARS)
    message_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)


class EditBody(BaseModel):
    """``POST /api/edit``: ask ``content`` in place of the user message ``message_id``."""

    session_id: str = Field(pattern=SESSION_ID_PATTERN.pattern, max_length=MAX_ID_CHARS)
    message_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    content: str = Field(
        min_length=1,
        pattern=MESSAGE_TEXT,
        description="The new text of the question: as a chat message's.",
    )


class CancelBody(BaseModel):
    """``POST /api/cancel``."""

    session_id: str = Field(pattern=SESSION_ID_PATTERN.pattern, max_length=MAX_ID_CHARS)
    message_id: str = Field(min_length=1, max_length=128)


class ChatAccepted(BaseModel):
    """Answer to a chat request (gateway REST and worker ``POST /chat``)."""

    # Always sent, so the schema marks every field required.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    message_id: str
    session_id: str
    status: Literal["streaming"] = "streaming"
    user_message_id: str | None = None


class CancelAccepted(TypedDict):
    """Answer to ``POST /api/cancel`` and the worker's ``POST /cancel``."""

    status: Literal["cancelled"]


class HistoryBody(TypedDict):
    """``GET /api/history/{session_id}``: stored messages, oldest first."""

    session_id: str
    messages: list[WireMessage]


class SessionSummary(TypedDict):
    id: str
    title: str
    updated_at: str


class SessionsBody(TypedDict):
    """``GET /api/sessions``: a page of the user's sessions, newest first.

    ``next``: pass it as ``?cursor=`` for the following page; null on the last.
    """

    sessions: list[SessionSummary]
    next: str | None


def session_summary(record: SessionRecord) -> SessionSummary:
    return {"id": record.id, "title": record.title, "updated_at": record.updated_at.isoformat()}


class RenameBody(BaseModel):
    """``PATCH /api/sessions/{id}``: the session's new title."""

    title: str = Field(
        min_length=1,
        max_length=200,
        pattern=MESSAGE_TEXT,
        description="Some non-blank text of at most 200 characters.",
    )


class SearchResult(SessionSummary):
    """A session that matched, and a piece of the text that matched."""

    snippet: str


class SearchBody(TypedDict):
    """``GET /api/search?q=``: the caller's sessions that matched, newest first."""

    query: str
    results: list[SearchResult]


def search_result(hit: SearchHit) -> SearchResult:
    return {**session_summary(hit.session), "snippet": hit.snippet}


class TicketBody(TypedDict):
    """A one-time ticket for ``/ws/chat?ticket=``, valid ``expires_in`` seconds.

    ``expires_at`` (Unix seconds, or None) is when the credential the ticket
    stands for expires: a socket opened with it must ``refresh`` before then.
    """

    ticket: str
    expires_in: int
    expires_at: float | None


class UsageBody(TypedDict):
    """``GET /api/me``: running answers and completion tokens since 00:00 UTC."""

    running: int
    tokens_today: int


class LimitsBody(TypedDict):
    """``GET /api/me``: the caller's limits."""

    max_concurrent_generations: int
    daily_tokens: int


class MeBody(TypedDict):
    """The caller, their role, and their usage against their limits (0: no daily budget)."""

    user_id: str
    role: str
    usage: UsageBody
    limits: LimitsBody


# -- gateway -> worker ---------------------------------------------------------------
# A worker validates like the gateway does: the ids of a generation (user,
# session, messages) are 1 to 128 characters of the session id alphabet, as the
# gateway's own are (they end up in keys, rows and logs).

# Gateway -> worker calls carry the shared internal token in this header.
INTERNAL_TOKEN_HEADER = "X-Internal-Token"


class GenerationRequest(BaseModel):
    """``POST /chat`` on a worker; the seed's body plus ids chosen by the caller.

    ``message_id`` names the assistant message; a request repeated with the
    same ``message_id`` never starts a second generation.
    """

    session_id: str = Field(pattern=SESSION_ID_PATTERN.pattern)
    user_id: str = Field(pattern=SESSION_ID_PATTERN.pattern)
    # The length is checked against the worker's max_message_chars setting.
    message: str = Field(min_length=1)
    message_id: str = Field(default_factory=new_id, pattern=SESSION_ID_PATTERN.pattern)
    user_message_id: str = Field(default_factory=new_id, pattern=SESSION_ID_PATTERN.pattern)
    client_id: str | None = Field(None, max_length=MAX_CLIENT_ID_CHARS)
    # True: answer the stored user message ``user_message_id`` again (``message`` is
    # its text); the earlier answers stay as alternatives.
    regenerate: bool = False
    # Set: ``message`` is an edited version of this stored user message; the new
    # question takes its place (its parent) and the conversation forks there.
    edit_of: str | None = Field(default=None, pattern=SESSION_ID_PATTERN.pattern)


class CancelRequest(BaseModel):
    """``POST /cancel`` on a worker (works on any worker)."""

    session_id: str = Field(pattern=SESSION_ID_PATTERN.pattern)
    # Only looked up, never stored: the gateway's own bound on cancel frames.
    message_id: str = Field(min_length=1, max_length=128)
