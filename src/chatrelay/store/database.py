"""One way to open a store's database: the SQLAlchemy engine every store uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# SQLite waits this long for a competing writer instead of failing at once.
SQLITE_BUSY_TIMEOUT_SECONDS = 15
# Connections each process keeps open, and no overflow beyond them: SQLAlchemy
# closes an overflow connection when it is returned, so under a storm of chat
# starts the default (5 kept + 10 overflow) opened and closed a PostgreSQL
# connection (a backend fork, an SSL probe, a login) for most transactions:
# at 100 starts/s most of the worker's time went there (docs/benchmarks.md,
# "Storms (issue 12)"). A start waits for a free connection instead (up to
# POOL_TIMEOUT_SECONDS). PostgreSQL's max_connections must cover
# POOL_SIZE x nodes (``cluster up`` and the harness allow 200).
POOL_SIZE = 20
POOL_TIMEOUT_SECONDS = 30.0


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer (several processes share the
    # file in a local cluster), and synchronous=NORMAL syncs at checkpoints
    # instead of at every commit: a crash may lose the last commits, never
    # corrupt the file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def open_database(url: str) -> AsyncEngine:
    """The engine of ``url``: SQLite (its folder made, WAL, a busy timeout) or a server
    (connections checked before use, so a restarted PostgreSQL costs no failed query)."""
    parsed = make_url(url)
    pool: dict[str, Any] = {}
    if parsed.database not in (None, "", ":memory:"):
        pool = {"pool_size": POOL_SIZE, "max_overflow": 0, "pool_timeout": POOL_TIMEOUT_SECONDS}
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, **pool)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, **pool)
    event.listen(engine.sync_engine, "connect", _tune_sqlite)
    return engine
