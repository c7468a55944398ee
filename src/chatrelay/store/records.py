"""What the store hands back: frozen records, not wire dicts.

The wire (``chatrelay.protocol``) turns these into frames and REST bodies, so
a change to the protocol is not a change to the store, nor the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Role = Literal["user", "assistant"]
FinalStatus = Literal["completed", "cancelled", "failed", "interrupted"]
# ``complete`` is a user message's only status; the others are an answer's.
MessageStatus = Literal["complete", "streaming", "completed", "cancelled", "failed", "interrupted"]


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One stored message; ``created_at`` is timezone-aware UTC."""

    id: str
    session_id: str
    role: Role
    content: str
    status: MessageStatus
    created_at: datetime
    client_id: str | None = None
    error: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    # An answer: the user message it answers (its regenerations share it).
    reply_to: str | None = None
    # The message it follows (see ``MessageRow.parent_id``).
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One of a user's sessions, as a session list shows it."""

    id: str
    title: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SessionPage:
    """One page of a user's sessions, newest first; ``next`` continues after the last one."""

    sessions: list[SessionRecord]
    next: str | None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A session whose title or some message matched, with a piece of the matching text."""

    session: SessionRecord
    snippet: str
