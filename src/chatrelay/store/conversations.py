"""The conversation store: sessions, their owners and their messages.

A user message is stored when it is accepted. An assistant message is
inserted once when its generation starts (``streaming``, empty) and updated
once when it ends, with its final status and whole text: never once per
chunk. While it streams, its text lives in the engine's log, and a
checkpoint of it is saved every few seconds, so an answer whose process and
log both died (the all-in-one server killed) still keeps most of its text.

Each change of record also writes its event to the outbox in the same
transaction, when the event log is on (``store/outbox.py``, docs/events.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chatrelay.exceptions import NotFound
from chatrelay.store import session_queries
from chatrelay.store.database import open_database
from chatrelay.store.migrate import upgrade
from chatrelay.store.outbox import Outbox
from chatrelay.store.records import (
    FinalStatus,
    MessageRecord,
    MessageStatus,
    Role,
    SearchHit,
    SessionPage,
    SessionRecord,
)
from chatrelay.store.schema import MessageRow, SessionRow

TITLE_CHARS = 60
# The key of a streaming message's ``usage`` that says which chunk its checkpoint reaches.
CHECKPOINT_SEQ = "checkpoint_seq"
# A session title a user sets: the column's size.
MAX_TITLE_CHARS = 200

#: Called inside the transaction that deletes a session (an outbox can write
#: its ``session.deleted`` event there, committed with the deletion or not at all).
DeletionHook = Callable[[AsyncSession, str], Awaitable[None]]


def session_title(content: str) -> str:
    """A session's title: its first user message, whitespace folded, cut short."""
    return " ".join(content.split())[:TITLE_CHARS]


def _utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; they were stored as UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _message_record(row: MessageRow) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        session_id=row.session_id,
        # The columns hold only what the typed methods below wrote.
        role=cast(Role, row.role),
        content=row.content,
        status=cast(MessageStatus, row.status),
        created_at=_utc(row.created_at),
        client_id=row.client_id,
        error=row.error,
        model=row.model,
        usage=row.usage,
        reply_to=row.reply_to,
        parent_id=row.parent_id,
    )


def branch_to(rows: list[MessageRow], tip: str, limit: int) -> list[MessageRecord]:
    """The conversation ending at message ``tip``, oldest first, at most ``limit`` messages:
    the walk back by ``parent_id`` through ``rows`` (it stops where they end)."""
    by_id = {row.id: row for row in rows}
    path: list[MessageRecord] = []
    row = by_id.get(tip)
    while row is not None and len(path) < limit:
        path.append(_message_record(row))
        row = by_id.get(row.parent_id) if row.parent_id is not None else None
    path.reverse()
    return path


async def _recent_rows(db: AsyncSession, session_id: str, limit: int) -> list[MessageRow]:
    """The session's newest ``limit`` rows (a branch walks back through them)."""
    return list(
        (
            await db.scalars(
                select(MessageRow)
                .where(MessageRow.session_id == session_id)
                .order_by(MessageRow.row_id.desc())
                .limit(limit)
            )
        ).all()
    )


# Rows read to walk a branch back: branches beside it may interleave with it.
BRANCH_ROWS_PER_TURN = 8


@dataclass(frozen=True, slots=True)
class TurnStart:
    """What ``begin_turn`` found and did, in one transaction."""

    owner: str
    # False: nothing was written (another owner, or the answer's id already exists).
    started: bool
    user_message: MessageRecord | None = None
    assistant_message: MessageRecord | None = None
    history: list[MessageRecord] = field(default_factory=list)


class ConversationStore:
    """Async access to sessions and messages. Use as an async context manager."""

    def __init__(self, url: str, *, node: str = "", record_events: bool = False) -> None:
        """``record_events``: write each change's event to the outbox (the event log is on)."""
        self.url = url
        self._engine: AsyncEngine = open_database(url)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        self.outbox = Outbox(self._sessions, node, record_events)
        #: Run in the deleting transaction of every ``delete_session``, in order.
        self.deletion_hooks: list[DeletionHook] = []

    async def __aenter__(self) -> ConversationStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Create or upgrade the schema."""
        await upgrade(self._engine)

    async def aclose(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> bool:
        """True when the database answers a ``SELECT 1``; False (not an error) otherwise."""
        try:
            async with self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    # -- sessions

    async def claim_session(self, session_id: str, user_id: str) -> str:
        """Create the session for ``user_id`` if it is new; return its owner."""
        now = datetime.now(UTC)
        async with self._sessions.begin() as db:
            owner = await db.scalar(select(SessionRow.user_id).where(SessionRow.id == session_id))
            if owner is not None:
                return owner
        try:
            async with self._sessions.begin() as db:
                db.add(SessionRow(id=session_id, user_id=user_id, created_at=now, updated_at=now))
                self.outbox.add(
                    db, "session.created", session_id=session_id, user_id=user_id, time=now, data={}
                )
            return user_id
        except IntegrityError:  # another node created it first
            owner = await self.session_owner(session_id)
            assert owner is not None
            return owner

    async def session_owner(self, session_id: str) -> str | None:
        async with self._sessions() as db:
            return await db.scalar(select(SessionRow.user_id).where(SessionRow.id == session_id))

    async def session_owners(self, session_ids: Collection[str]) -> dict[str, str]:
        """The owners of those of ``session_ids`` that are stored, in one query."""
        if not session_ids:
            return {}
        async with self._sessions() as db:
            rows = await db.execute(
                select(SessionRow.id, SessionRow.user_id).where(SessionRow.id.in_(session_ids))
            )
            return {session_id: user_id for session_id, user_id in rows}

    async def branch(self, session_id: str, tip: str, limit: int) -> list[MessageRecord]:
        """The conversation ending at message ``tip``, oldest first, at most ``limit``
        messages: its branch only (other versions and what follows them left out)."""
        async with self._sessions() as db:
            rows = await _recent_rows(db, session_id, limit * BRANCH_ROWS_PER_TURN)
        return branch_to(rows, tip, limit)

    async def list_sessions(self, user_id: str, limit: int = 100) -> list[SessionRecord]:
        """The user's sessions, newest first."""
        async with self._sessions() as db:
            rows = await db.scalars(
                select(SessionRow)
                .where(SessionRow.user_id == user_id)
                .order_by(SessionRow.updated_at.desc(), SessionRow.id.desc())
                .limit(limit)
            )
            return [session_queries.session_record(row) for row in rows]

    async def session_page(
        self, user_id: str, limit: int = 50, cursor: str | None = None
    ) -> SessionPage:
        """A page of the user's sessions, newest first; ``cursor`` is a page's ``next``.

        Raises ``InvalidMessage`` for a cursor this store did not give.
        """
        async with self._sessions() as db:
            return await session_queries.session_page(db, user_id, limit, cursor)

    async def search(self, user_id: str, text: str, limit: int = 50) -> list[SearchHit]:
        """The user's sessions whose title or messages contain ``text`` (any case), newest first."""
        async with self._sessions() as db:
            return await session_queries.search(db, user_id, text, limit)

    async def rename_session(self, session_id: str, title: str) -> SessionRecord | None:
        """Set a session's title (it then keeps it); None if the session is not stored."""
        now = datetime.now(UTC)
        async with self._sessions.begin() as db:
            row = await db.get(SessionRow, session_id)
            if row is None:
                return None
            row.title = title[:MAX_TITLE_CHARS]
            self.outbox.add(
                db,
                "session.renamed",
                session_id=session_id,
                user_id=row.user_id,
                time=now,
                data={"title": row.title},
            )
            return session_queries.session_record(row)

    async def delete_session(self, session_id: str) -> bool:
        """Delete a session and all its messages in one transaction (with ``deletion_hooks``).

        True if it was stored.
        """
        async with self._sessions.begin() as db:
            owner = await db.scalar(select(SessionRow.user_id).where(SessionRow.id == session_id))
            if owner is None:
                return False
            await db.execute(delete(MessageRow).where(MessageRow.session_id == session_id))
            await db.execute(delete(SessionRow).where(SessionRow.id == session_id))
            self.outbox.add_session_deleted(db, session_id, owner)
            for hook in self.deletion_hooks:
                await hook(db, session_id)
            return True

    async def tokens_since(self, user_id: str, since: datetime) -> int:
        """Completion tokens of the user's answers started at or after ``since`` (quotas)."""
        async with self._sessions() as db:
            usages = await db.scalars(
                select(MessageRow.usage)
                .join(SessionRow, SessionRow.id == MessageRow.session_id)
                .where(
                    SessionRow.user_id == user_id,
                    MessageRow.role == "assistant",
                    MessageRow.created_at >= since,
                )
            )
            return sum(int(cast(Any, usage).get("tokens", 0)) for usage in usages if usage)

    # -- messages

    async def add_message(
        self,
        *,
        message_id: str,
        session_id: str,
        role: Role,
        content: str,
        status: MessageStatus,
        client_id: str | None = None,
    ) -> tuple[MessageRecord, bool]:
        """Insert a message; return it and whether it is new (an id is stored once)."""
        now = datetime.now(UTC)
        row = MessageRow(
            id=message_id,
            session_id=session_id,
            role=role,
            content=content,
            status=status,
            client_id=client_id,
            created_at=now,
        )
        try:
            async with self._sessions.begin() as db:
                row.parent_id = await db.scalar(  # it follows the newest message
                    select(MessageRow.id)
                    .where(MessageRow.session_id == session_id)
                    .order_by(MessageRow.row_id.desc())
                    .limit(1)
                )
                db.add(row)
                session = await db.get(SessionRow, session_id)
                if session is not None:
                    session.updated_at = now
                    if session.title is None and role == "user":
                        session.title = session_title(content)
                    self._record_message(db, row, session.user_id)
        except IntegrityError:
            existing = await self.get_message(message_id)
            if existing is None:
                raise
            return existing, False
        return _message_record(row), True

    async def begin_turn(
        self,
        *,
        session_id: str,
        user_id: str,
        user_message_id: str,
        content: str,
        client_id: str | None,
        assistant_id: str,
        history_limit: int,
        model: str | None = None,
    ) -> TurnStart:
        """Start a chat turn in ONE transaction: claim the session, store the user's
        message and the assistant's (``streaming``, empty), read the recent history.

        Writes nothing when the session has another owner or the assistant id is
        already stored (a retried request). One transaction instead of five keeps
        the start of an answer cheap when many begin at once (SQLite has one writer).
        """

        async def once() -> TurnStart:
            now = datetime.now(UTC)
            async with self._sessions.begin() as db:
                session = await db.get(SessionRow, session_id)
                if session is None:
                    session = SessionRow(
                        id=session_id, user_id=user_id, created_at=now, updated_at=now
                    )
                    db.add(session)
                    self.outbox.add(
                        db,
                        "session.created",
                        session_id=session_id,
                        user_id=user_id,
                        time=now,
                        data={},
                    )
                elif session.user_id != user_id:
                    return TurnStart(owner=session.user_id, started=False)
                exists = await db.scalar(
                    select(MessageRow.row_id).where(MessageRow.id == assistant_id)
                )
                if exists is not None:
                    return TurnStart(owner=user_id, started=False)
                # A new question follows the newest message: the branch last added to.
                rows = await _recent_rows(db, session_id, history_limit * BRANCH_ROWS_PER_TURN)
                user_row = MessageRow(
                    id=user_message_id,
                    session_id=session_id,
                    role="user",
                    content=content,
                    status="complete",
                    client_id=client_id,
                    created_at=now,
                    parent_id=rows[0].id if rows else None,
                )
                assistant_row = MessageRow(
                    id=assistant_id,
                    session_id=session_id,
                    role="assistant",
                    content="",
                    status="streaming",
                    created_at=now,
                    reply_to=user_message_id,
                    parent_id=user_message_id,
                )
                db.add_all([user_row, assistant_row])
                session.updated_at = now
                if session.title is None:
                    session.title = session_title(content)
                self._record_message(db, user_row, user_id)
                self._record_message(db, assistant_row, user_id, model=model)
                await db.flush()
                return TurnStart(
                    owner=user_id,
                    started=True,
                    user_message=_message_record(user_row),
                    assistant_message=_message_record(assistant_row),
                    history=branch_to(
                        [assistant_row, user_row, *rows], assistant_row.id, history_limit
                    ),
                )

        for attempt in (1, 2):
            try:
                return await once()
            except IntegrityError:
                if attempt == 2:  # a concurrent insert of the same ids, twice
                    raise
        raise AssertionError("unreachable")

    async def begin_regeneration(
        self,
        *,
        session_id: str,
        user_id: str,
        user_message_id: str,
        assistant_id: str,
        history_limit: int,
        model: str | None = None,
    ) -> TurnStart:
        """Start another answer to a stored user message, in ONE transaction.

        The new answer (``streaming``, empty) shares ``reply_to`` with the earlier
        ones, which stay as its alternatives. ``history`` ends with that user
        message, each earlier one followed by its newest answer only. Writes
        nothing for another owner or an assistant id already stored (a retry).
        Raises ``NotFound`` unless the user message is in the session.
        """
        now = datetime.now(UTC)
        async with self._sessions.begin() as db:
            session = await db.get(SessionRow, session_id)
            if session is None:
                raise NotFound("no such session")
            if session.user_id != user_id:
                return TurnStart(owner=session.user_id, started=False)
            if await db.scalar(select(MessageRow.row_id).where(MessageRow.id == assistant_id)):
                return TurnStart(owner=user_id, started=False)
            asked = await db.scalar(
                select(MessageRow).where(
                    MessageRow.id == user_message_id,
                    MessageRow.session_id == session_id,
                    MessageRow.role == "user",
                )
            )
            if asked is None:
                raise NotFound("no such user message in this session")
            rows = await _recent_rows(db, session_id, history_limit * BRANCH_ROWS_PER_TURN)
            assistant_row = MessageRow(
                id=assistant_id,
                session_id=session_id,
                role="assistant",
                content="",
                status="streaming",
                created_at=now,
                reply_to=user_message_id,
                parent_id=user_message_id,
            )
            db.add(assistant_row)
            session.updated_at = now
            self._record_message(db, assistant_row, user_id, model=model)
            await db.flush()
            return TurnStart(
                owner=user_id,
                started=True,
                user_message=_message_record(asked),
                assistant_message=_message_record(assistant_row),
                history=branch_to([asked, *rows], asked.id, history_limit),
            )

    async def begin_edit(
        self,
        *,
        session_id: str,
        user_id: str,
        edited_id: str,
        user_message_id: str,
        content: str,
        assistant_id: str,
        history_limit: int,
        model: str | None = None,
    ) -> TurnStart:
        """Ask an edited question, in ONE transaction: a new user message with the edited
        one's parent (a version of it: the conversation forks there, the old branch
        stays) and its answer (``streaming``, empty). ``history`` is the new branch.

        Writes nothing for another owner or an assistant id already stored (a
        retry). Raises ``NotFound`` unless ``edited_id`` is a user message of the session.
        """
        now = datetime.now(UTC)
        async with self._sessions.begin() as db:
            session = await db.get(SessionRow, session_id)
            if session is None:
                raise NotFound("no such session")
            if session.user_id != user_id:
                return TurnStart(owner=session.user_id, started=False)
            if await db.scalar(select(MessageRow.row_id).where(MessageRow.id == assistant_id)):
                return TurnStart(owner=user_id, started=False)
            edited = await db.scalar(
                select(MessageRow).where(
                    MessageRow.id == edited_id,
                    MessageRow.session_id == session_id,
                    MessageRow.role == "user",
                )
            )
            if edited is None:
                raise NotFound("no such user message in this session")
            rows = await _recent_rows(db, session_id, history_limit * BRANCH_ROWS_PER_TURN)
            user_row = MessageRow(
                id=user_message_id,
                session_id=session_id,
                role="user",
                content=content,
                status="complete",
                created_at=now,
                parent_id=edited.parent_id,
            )
            assistant_row = MessageRow(
                id=assistant_id,
                session_id=session_id,
                role="assistant",
                content="",
                status="streaming",
                created_at=now,
                reply_to=user_message_id,
                parent_id=user_message_id,
            )
            db.add_all([user_row, assistant_row])
            session.updated_at = now
            self._record_message(db, user_row, user_id, edit_of=edited_id)
            self._record_message(db, assistant_row, user_id, model=model)
            await db.flush()
            return TurnStart(
                owner=user_id,
                started=True,
                user_message=_message_record(user_row),
                assistant_message=_message_record(assistant_row),
                history=branch_to(
                    [assistant_row, user_row, *rows], assistant_row.id, history_limit
                ),
            )

    async def finish_message(
        self,
        message_id: str,
        *,
        status: FinalStatus,
        content: str,
        error: str | None = None,
        model: str | None = None,
        usage: Mapping[str, object] | None = None,
    ) -> bool:
        """Store a message's end (only if it is still streaming); True if it was updated."""
        now = datetime.now(UTC)
        stored_usage = None if usage is None else dict(usage)
        async with self._sessions.begin() as db:
            result = await db.execute(
                update(MessageRow)
                .where(MessageRow.id == message_id, MessageRow.status == "streaming")
                .values(
                    status=status,
                    content=content,
                    error=error,
                    model=model,
                    usage=stored_usage,
                    finished_at=now,
                )
            )
            updated = bool(result.rowcount)  # type: ignore[attr-defined]
            if updated and self.outbox.enabled:
                session_id, user_id = (
                    await db.execute(
                        select(MessageRow.session_id, SessionRow.user_id)
                        .join(SessionRow, SessionRow.id == MessageRow.session_id)
                        .where(MessageRow.id == message_id)
                    )
                ).one()
                self.outbox.add(
                    db,
                    "message.finished",
                    session_id=session_id,
                    user_id=user_id,
                    time=now,
                    data={
                        "message_id": message_id,
                        "status": status,
                        "content": content,
                        "error": error,
                        "model": model,
                        "usage": stored_usage,
                    },
                )
            return updated

    def _record_message(
        self,
        db: AsyncSession,
        row: MessageRow,
        user_id: str,
        model: str | None = None,
        edit_of: str | None = None,
    ) -> None:
        """The outbox event of a message just added to ``db``."""
        if row.role == "user":
            data: dict[str, object] = {
                "message_id": row.id,
                "content": row.content,
                "client_id": row.client_id,
                "parent_id": row.parent_id,
            }
            if edit_of is not None:
                data["edit_of"] = edit_of
            self.outbox.add(
                db,
                "message.user",
                session_id=row.session_id,
                user_id=user_id,
                time=row.created_at,
                data=data,
            )
            return
        self.outbox.add(
            db,
            "message.started",
            session_id=row.session_id,
            user_id=user_id,
            time=row.created_at,
            data={
                "message_id": row.id,
                "reply_to": row.reply_to,
                "parent_id": row.parent_id,
                "model": model,
                "worker": self.outbox.node,
            },
        )

    async def save_progress(
        self,
        message_id: str,
        content: str,
        seq: int | None = None,
        usage: Mapping[str, object] | None = None,
    ) -> None:
        """Checkpoint the text of a message still streaming (kept if its worker dies).

        ``seq``: the last chunk folded into ``content``; kept in ``usage`` (as
        ``checkpoint_seq``, replaced by the real usage at the end) so a join
        snapshot can tell where the checkpoint meets a trimmed log. ``usage``:
        what else the running answer's usage holds (a continuation's count).
        """
        values: dict[str, object] = {"content": content}
        if seq is not None:
            values["usage"] = {**(usage or {}), CHECKPOINT_SEQ: seq}
        async with self._sessions.begin() as db:
            await db.execute(
                update(MessageRow)
                .where(MessageRow.id == message_id, MessageRow.status == "streaming")
                .values(**values)
            )

    async def mark_continued(self, message_id: str, usage: Mapping[str, object]) -> bool:
        """Add ``usage`` (failover's count) to a message still streaming; True if it was."""
        async with self._sessions.begin() as db:
            row = await db.scalar(
                select(MessageRow).where(
                    MessageRow.id == message_id, MessageRow.status == "streaming"
                )
            )
            if row is None:
                return False
            row.usage = {**(row.usage or {}), **usage}
            return True

    async def checkpoint(self, message_id: str) -> tuple[str, int] | None:
        """A streaming message's checkpoint: its text and the last chunk ``seq`` in it."""
        record = await self.get_message(message_id)
        if record is None or record.status != "streaming" or not record.usage:
            return None
        seq = record.usage.get(CHECKPOINT_SEQ)
        return (record.content, seq) if isinstance(seq, int) else None

    async def get_message(self, message_id: str) -> MessageRecord | None:
        async with self._sessions() as db:
            row = await db.scalar(select(MessageRow).where(MessageRow.id == message_id))
            return None if row is None else _message_record(row)

    async def history(
        self, session_id: str, limit: int = 200, before: str | None = None
    ) -> list[MessageRecord]:
        """Messages of a session, oldest first: the last ``limit`` ones before ``before``."""
        query = select(MessageRow).where(MessageRow.session_id == session_id)
        async with self._sessions() as db:
            if before is not None:
                pivot = await db.scalar(select(MessageRow.row_id).where(MessageRow.id == before))
                if pivot is not None:
                    query = query.where(MessageRow.row_id < pivot)
            rows: Sequence[MessageRow] = (
                await db.scalars(query.order_by(MessageRow.row_id.desc()).limit(limit))
            ).all()
        return [_message_record(row) for row in reversed(rows)]

    async def streaming_messages(self) -> list[MessageRecord]:
        """Assistant messages not finished yet, on every session."""
        async with self._sessions() as db:
            rows = await db.scalars(select(MessageRow).where(MessageRow.status == "streaming"))
            return [_message_record(row) for row in rows]
