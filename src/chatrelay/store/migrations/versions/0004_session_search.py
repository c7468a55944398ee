"""session list paging, search indexes, and the message an answer replies to

Revision ID: 0004
Revises: 0003

The session list pages by ``(updated_at, id)`` within one user: one index
serves it. Search (``ConversationStore.search``) is a substring match,
case-insensitive, over titles and message text: on PostgreSQL ``ILIKE``
served by trigram (``pg_trgm``) GIN indexes; on SQLite ``LIKE`` over the
caller's own sessions only (docs/web.md says why not FTS5). Where the role
may not create the extension, the trigram indexes are left out and search
still answers, by a scan.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TRIGRAM_INDEXES = {
    "ix_messages_content_trgm": ("messages", "content"),
    "ix_sessions_title_trgm": ("sessions", "title"),
}


def upgrade() -> None:
    # Regenerated answers of one user message share it (they are its alternatives).
    op.add_column("messages", sa.Column("reply_to", sa.String(128), nullable=True))
    op.create_index("ix_sessions_user_updated", "sessions", ["user_id", "updated_at", "id"])
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        return  # not allowed here: search scans instead
    for name, (table, column) in TRIGRAM_INDEXES.items():
        op.create_index(
            name,
            table,
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in TRIGRAM_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_index("ix_sessions_user_updated", "sessions")
    op.drop_column("messages", "reply_to")
