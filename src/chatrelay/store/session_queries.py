"""The user's session list, a page at a time, and search over titles and message text.

Paging is by keyset, not offset: the cursor is the last session's
``(updated_at, id)``, so a user with thousands of sessions gets each page
from the ``ix_sessions_user_updated`` index, and a session that moves to the
top while they scroll is not shown twice.

Search is a case-insensitive substring match (``ILIKE`` on PostgreSQL, served
by trigram indexes; ``LIKE`` on SQLite, scoped to the caller's sessions): a
word, a part of a word or an identifier from a code block all match, the same
way on both stores. Migration 0004 says more; docs/web.md says why.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from chatrelay.exceptions import InvalidMessage
from chatrelay.store.records import SearchHit, SessionPage, SessionRecord
from chatrelay.store.schema import MessageRow, SessionRow

# Characters of matching text around the match in a search hit.
SNIPPET_CHARS = 120
DEFAULT_TITLE = "New chat"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def session_record(row: SessionRow) -> SessionRecord:
    return SessionRecord(row.id, row.title or DEFAULT_TITLE, _utc(row.updated_at))


#: A cursor: the last session's ``updated_at`` in microseconds since 1970 (UTC),
#: a dot, its id. Every string of this form is a valid cursor (any time up to
#: the year 5000), so the API's schema can say exactly what it takes.
CURSOR_PATTERN = r"^[0-9]{1,17}\.[A-Za-z0-9_.:-]{1,128}$"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(record: SessionRecord) -> str:
    micros = (record.updated_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{record.id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``(updated_at, id)`` of a cursor from ``encode_cursor``; ``InvalidMessage`` if malformed."""
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise InvalidMessage("the cursor is not one this server gave")
    micros, _, session_id = cursor.partition(".")
    return EPOCH + timedelta(microseconds=int(micros)), session_id


async def session_page(
    db: AsyncSession, user_id: str, limit: int, cursor: str | None
) -> SessionPage:
    """Up to ``limit`` of the user's sessions after ``cursor``, newest first."""
    query = select(SessionRow).where(SessionRow.user_id == user_id)
    if cursor is not None:
        when, session_id = decode_cursor(cursor)
        if db.get_bind().dialect.name == "sqlite":
            when = when.replace(tzinfo=None)
        query = query.where(tuple_(SessionRow.updated_at, SessionRow.id) < (when, session_id))
    rows = (
        await db.scalars(
            query.order_by(SessionRow.updated_at.desc(), SessionRow.id.desc()).limit(limit + 1)
        )
    ).all()
    records = [session_record(row) for row in rows[:limit]]
    more = len(rows) > limit
    return SessionPage(records, encode_cursor(records[-1]) if more and records else None)


def _pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _snippet(text: str, needle: str) -> str:
    at = text.casefold().find(needle.casefold())
    if at < 0:
        return " ".join(text.split())[:SNIPPET_CHARS]
    start = max(0, at - SNIPPET_CHARS // 3)
    piece = " ".join(text[start : start + SNIPPET_CHARS].split())
    return ("…" if start else "") + piece


async def search(db: AsyncSession, user_id: str, text: str, limit: int) -> list[SearchHit]:
    """The user's sessions whose title or messages contain ``text``, newest first."""
    pattern = _pattern(text)
    # The first matching message of each session (by row id), for its snippet.
    first_match = (
        select(MessageRow.session_id, func.min(MessageRow.row_id).label("row_id"))
        .join(SessionRow, SessionRow.id == MessageRow.session_id)
        .where(SessionRow.user_id == user_id, MessageRow.content.ilike(pattern, escape="\\"))
        .group_by(MessageRow.session_id)
        .subquery()
    )
    query = (
        select(SessionRow, MessageRow.content)
        .outerjoin(first_match, first_match.c.session_id == SessionRow.id)
        .outerjoin(MessageRow, MessageRow.row_id == first_match.c.row_id)
        .where(
            SessionRow.user_id == user_id,
            or_(
                SessionRow.title.ilike(pattern, escape="\\"),
                first_match.c.row_id.is_not(None),
            ),
        )
        .order_by(SessionRow.updated_at.desc(), SessionRow.id.desc())
        .limit(limit)
    )
    hits = []
    for found in (await db.execute(query)).all():
        row, content = found[0], found[1]
        record = session_record(row)
        hits.append(SearchHit(record, _snippet(content or record.title, text)))
    return hits
