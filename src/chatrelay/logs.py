"""Log set-up: one readable line per event, with the ids that matter appended.

Operators grep for lines such as ``WebSocket connected``; the node, session,
user and message ids follow as ``key=value`` pairs.
"""

from __future__ import annotations

import logging

FIELDS = ("node", "session_id", "user_id", "message_id", "status", "tokens", "code", "url")


class KeyValueFormatter(logging.Formatter):
    """Appends the known ``extra`` fields of a record as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = [f"{key}={getattr(record, key)}" for key in FIELDS if hasattr(record, key)]
        return f"{line} {' '.join(pairs)}" if pairs else line


def configure(level: str = "info", node_id: str | None = None) -> None:
    """Send chatrelay's (and uvicorn's) logs to stderr in one format."""
    handler = logging.StreamHandler()
    prefix = f"[{node_id}] " if node_id else ""
    handler.setFormatter(
        KeyValueFormatter(f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "alembic", "httpx", "aiosqlite", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
