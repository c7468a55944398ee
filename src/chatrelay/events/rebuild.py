"""A conversation store rebuilt from the event topic alone.

Events are applied in topic order (each session's in its order), each ``id``
once. The target must be empty: a rebuild recreates, it does not merge. The
result has the same sessions (owner, title, times) and messages (ids, order
within a session, content, status, error, model, usage, times) as the store
the events came from; ``row_id`` differs across sessions, since sessions in
different partitions have no order between them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatrelay.events.envelope import parse_time
from chatrelay.store.conversations import session_title
from chatrelay.store.database import open_database
from chatrelay.store.migrate import upgrade
from chatrelay.store.schema import MessageRow, SessionRow

# Events applied per transaction.
EVENTS_PER_TRANSACTION = 500


class RebuildError(RuntimeError):
    """The rebuild cannot start (a store that is not empty)."""


@dataclass(slots=True)
class RebuildStats:
    applied: int = 0
    duplicates: int = 0
    sessions: int = 0
    messages: int = 0


async def rebuild(events: Iterable[dict[str, Any]], database_url: str) -> RebuildStats:
    """Apply ``events`` to the empty store at ``database_url``; return what was done."""
    engine = open_database(database_url)
    try:
        await upgrade(engine)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as db:
            if await db.scalar(select(func.count()).select_from(SessionRow)):
                raise RebuildError(
                    f"{database_url} already holds sessions: rebuild into an empty store"
                )
        stats = RebuildStats()
        seen: set[str] = set()
        batch: list[dict[str, Any]] = []
        for event in events:
            if event["id"] in seen:
                stats.duplicates += 1
                continue
            seen.add(event["id"])
            batch.append(event)
            if len(batch) >= EVENTS_PER_TRANSACTION:
                await _apply_batch(sessions, batch)
                stats.applied += len(batch)
                batch = []
        await _apply_batch(sessions, batch)
        stats.applied += len(batch)
        async with sessions() as db:
            stats.sessions = int(await db.scalar(select(func.count()).select_from(SessionRow)) or 0)
            stats.messages = int(await db.scalar(select(func.count()).select_from(MessageRow)) or 0)
        return stats
    finally:
        await engine.dispose()


async def _apply_batch(
    sessions: async_sessionmaker[AsyncSession], batch: list[dict[str, Any]]
) -> None:
    if not batch:
        return
    async with sessions.begin() as db:
        for event in batch:
            await _apply(db, event)
            await db.flush()  # row_id in application order


async def _apply(db: AsyncSession, event: dict[str, Any]) -> None:
    kind, data, time = event["type"], event["data"], parse_time(event["time"])
    session_id = event["session_id"]
    if kind == "session.deleted":
        await db.execute(delete(MessageRow).where(MessageRow.session_id == session_id))
        await db.execute(delete(SessionRow).where(SessionRow.id == session_id))
        return
    session = await db.get(SessionRow, session_id)
    if session is None:
        session = SessionRow(
            id=session_id, user_id=event["user_id"], created_at=time, updated_at=time
        )
        db.add(session)
        await db.flush()  # no relationship() orders the inserts: the session goes first
    if kind == "session.renamed":
        session.title = data["title"]
    elif kind == "message.user":
        db.add(
            MessageRow(
                id=data["message_id"],
                session_id=session_id,
                role="user",
                content=data["content"],
                status="complete",
                client_id=data.get("client_id"),
                created_at=time,
                parent_id=data.get("parent_id"),
            )
        )
        session.updated_at = time
        if session.title is None:
            session.title = session_title(data["content"])
    elif kind == "message.started":
        db.add(
            MessageRow(
                id=data["message_id"],
                session_id=session_id,
                role="assistant",
                content="",
                status="streaming",
                created_at=time,
                reply_to=data.get("reply_to"),
                parent_id=data.get("parent_id"),
            )
        )
        session.updated_at = time
    elif kind == "message.finished":
        # A Core update, as the store's finish_message: a missing usage is SQL NULL, not JSON null.
        await db.execute(
            update(MessageRow)
            .where(MessageRow.id == data["message_id"])
            .values(
                status=data["status"],
                content=data["content"],
                error=data.get("error"),
                model=data.get("model"),
                usage=data.get("usage"),
                finished_at=time,
            )
        )
