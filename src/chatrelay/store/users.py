"""The accounts of ``accounts`` auth mode: a name, an argon2 hash, an admin flag.

The store keeps hashes only; hashing and checking passwords is
``chatrelay.auth.passwords``' job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from chatrelay.store.database import open_database
from chatrelay.store.migrate import upgrade
from chatrelay.store.schema import UserRow


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One account; ``created_at`` is timezone-aware UTC."""

    name: str
    password_hash: str
    admin: bool
    created_at: datetime


class UserExists(Exception):
    """``add`` found an account of that name already."""


def _record(row: UserRow) -> UserRecord:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return UserRecord(row.name, row.password_hash, row.admin, created)


class UserStore:
    """Async access to the ``users`` table. Use as an async context manager."""

    def __init__(self, url: str) -> None:
        self._engine: AsyncEngine = open_database(url)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)

    async def __aenter__(self) -> UserStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Create or upgrade the schema (the CLI may run before any server has)."""
        await upgrade(self._engine)

    async def aclose(self) -> None:
        await self._engine.dispose()

    async def add(self, name: str, password_hash: str, *, admin: bool = False) -> UserRecord:
        """Create an account; raises ``UserExists``."""
        row = UserRow(
            name=name, password_hash=password_hash, admin=admin, created_at=datetime.now(UTC)
        )
        try:
            async with self._sessions.begin() as db:
                db.add(row)
        except IntegrityError as exc:
            raise UserExists(name) from exc
        return _record(row)

    async def get(self, name: str) -> UserRecord | None:
        async with self._sessions() as db:
            row = await db.get(UserRow, name)
            return None if row is None else _record(row)

    async def list(self) -> list[UserRecord]:
        """Every account, by name."""
        async with self._sessions() as db:
            rows = await db.scalars(select(UserRow).order_by(UserRow.name))
            return [_record(row) for row in rows]

    async def set_password(self, name: str, password_hash: str) -> bool:
        """Replace an account's hash; False when there is no such account."""
        async with self._sessions.begin() as db:
            result = await db.execute(
                update(UserRow).where(UserRow.name == name).values(password_hash=password_hash)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def remove(self, name: str) -> bool:
        """Delete an account (its sessions stay); False when there was none."""
        async with self._sessions.begin() as db:
            result = await db.execute(delete(UserRow).where(UserRow.name == name))
        return bool(result.rowcount)  # type: ignore[attr-defined]
