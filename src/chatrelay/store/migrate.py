"""Bring the database schema up to date with Alembic, at start.

Every node of a cluster runs this when it starts, often all at the same
moment on one database. Alembic does not serialise concurrent upgrades (two
of them both find no ``alembic_version`` and both create the tables), so the
upgrade runs in one transaction that first takes a database-wide lock: the
first node migrates, the others wait, then find the schema at head and do
nothing. Both databases have transactional DDL, so a node that fails midway
leaves nothing half-made.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
# The PostgreSQL advisory lock that migrations take; any fixed number that no
# other application on the same server uses ("chat" in ASCII).
MIGRATION_LOCK_KEY = 0x63686174
# How long a starting node waits for another node's migration before giving up;
# a migration of this schema takes well under a second.
MIGRATION_LOCK_TIMEOUT_SECONDS = 60


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def _lock_out_other_migrations(connection: AsyncConnection) -> None:
    """Hold the database's migration lock until the transaction ends."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        await connection.execute(
            text(f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT_SECONDS}s'")
        )
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
        )
    elif dialect == "sqlite":
        # The driver would only begin at the first write, after Alembic has
        # already read the version table; take the write lock up front
        # instead (waiting up to the connection's busy timeout).
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


async def upgrade(engine: AsyncEngine) -> None:
    """Apply every migration not applied yet (idempotent, safe on every start,
    safe for several processes at once)."""
    async with engine.begin() as connection:
        await _lock_out_other_migrations(connection)
        await connection.run_sync(_upgrade)
