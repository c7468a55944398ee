"""The transactional outbox: events of record, written with the change they describe.

``Outbox.add`` puts an event row into the caller's open transaction, so the
change and its event commit together or not at all. The relay
(``chatrelay.events.relay``) reads unsent rows in ``seq`` order, marks them
sent once Kafka acknowledged them, moves the ones Kafka refuses for good to
``event_dead_letters`` with the reason, and prunes sent rows after a
retention.

Rows are written only when the event log is configured (``enabled``): with
no relay to drain them the table would only grow, and an all-in-one user who
never asked for Kafka should pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatrelay.events.envelope import EventType, encode, new_event
from chatrelay.store.schema import DeadEventRow, OutboxRow


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One outbox row as the relay sees it."""

    seq: int
    event_id: str
    session_id: str
    payload: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Backlog:
    """Unsent events: how many, and when the oldest was written (None: none)."""

    count: int
    oldest: datetime | None


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Outbox:
    """The outbox of one store: writes inside transactions, reads for the relay."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], node: str, enabled: bool):
        self._sessions = sessions
        self.node = node
        self.enabled = enabled
        # Set by whoever runs this node's relay: its verdict for /health.
        self.relay_health: Callable[[], str] | None = None

    def health(self) -> str:
        """``/health``'s ``events``: off (no event log), ok or degraded."""
        if not self.enabled:
            return "off"
        return "ok" if self.relay_health is None else self.relay_health()

    def add(
        self,
        db: AsyncSession,
        type_: EventType,
        *,
        session_id: str,
        user_id: str,
        time: datetime,
        data: dict[str, Any],
    ) -> None:
        """Add an event to ``db``'s transaction (nothing when the log is off)."""
        if not self.enabled:
            return
        event = new_event(
            type_, session_id=session_id, user_id=user_id, node=self.node, time=time, data=data
        )
        db.add(
            OutboxRow(
                event_id=event["id"],
                session_id=session_id,
                payload=encode(event).decode(),
                created_at=time,
            )
        )

    def add_session_deleted(self, db: AsyncSession, session_id: str, user_id: str) -> None:
        """Record ``session.deleted`` in ``db``'s transaction (where a session is deleted)."""
        self.add(
            db,
            "session.deleted",
            session_id=session_id,
            user_id=user_id,
            time=datetime.now(UTC),
            data={},
        )

    # -- the relay's side

    async def unsent(self, after_seq: int, limit: int) -> list[OutboxEntry]:
        """Unsent rows with ``seq > after_seq``, in ``seq`` order."""
        wanted = OutboxRow.seq > after_seq
        async with self._sessions() as db:
            rows = await db.execute(
                select(
                    OutboxRow.seq,
                    OutboxRow.event_id,
                    OutboxRow.session_id,
                    OutboxRow.payload,
                    OutboxRow.created_at,
                )
                .where(OutboxRow.sent_at.is_(None), wanted)
                .order_by(OutboxRow.seq)
                .limit(limit)
            )
            return [
                OutboxEntry(seq, event_id, session_id, payload, _utc(created_at))
                for seq, event_id, session_id, payload, created_at in rows
            ]

    async def settle(self, sent: Sequence[int], dead: Sequence[tuple[OutboxEntry, str]]) -> None:
        """Mark ``sent`` rows sent and move ``dead`` ones (with their reason) aside, at once."""
        if not sent and not dead:
            return
        now = datetime.now(UTC)
        async with self._sessions.begin() as db:
            if sent:
                await db.execute(
                    update(OutboxRow).where(OutboxRow.seq.in_(sent)).values(sent_at=now)
                )
            if dead:
                await db.execute(
                    insert(DeadEventRow),
                    [
                        {
                            "seq": entry.seq,
                            "event_id": entry.event_id,
                            "session_id": entry.session_id,
                            "payload": entry.payload,
                            "reason": reason,
                            "created_at": entry.created_at,
                            "failed_at": now,
                        }
                        for entry, reason in dead
                    ],
                )
                await db.execute(
                    delete(OutboxRow).where(OutboxRow.seq.in_([entry.seq for entry, _ in dead]))
                )

    async def prune(self, sent_before: datetime) -> int:
        """Delete rows sent before ``sent_before``; return how many."""
        async with self._sessions.begin() as db:
            result = await db.execute(
                delete(OutboxRow).where(
                    OutboxRow.sent_at.is_not(None), OutboxRow.sent_at < sent_before
                )
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def backlog(self) -> Backlog:
        async with self._sessions() as db:
            count, oldest = (
                await db.execute(
                    select(func.count(), func.min(OutboxRow.created_at)).where(
                        OutboxRow.sent_at.is_(None)
                    )
                )
            ).one()
            return Backlog(int(count), None if oldest is None else _utc(oldest))

    async def dead_letters(self) -> list[tuple[str, str]]:
        """(event id, reason) of every dead-lettered event, oldest first."""
        async with self._sessions() as db:
            rows = await db.execute(
                select(DeadEventRow.event_id, DeadEventRow.reason).order_by(DeadEventRow.seq)
            )
            return [(event_id, reason) for event_id, reason in rows]
