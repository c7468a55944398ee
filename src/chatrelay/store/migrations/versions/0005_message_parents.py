"""the message each message follows: conversations that fork

Revision ID: 0005
Revises: 0004

An edited question is a new user message with the edited one's parent (a
version of it); the old branch stays, reachable from its version. Existing
conversations become one branch each: an answer follows the question it
replies to (or the newest question before it), a question follows the newest
answer before it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BEFORE = """
    (SELECT earlier.id FROM messages AS earlier
     WHERE earlier.session_id = messages.session_id
       AND earlier.row_id < messages.row_id
       AND earlier.role = '{role}'
     ORDER BY earlier.row_id DESC LIMIT 1)
"""


def upgrade() -> None:
    op.add_column("messages", sa.Column("parent_id", sa.String(128), nullable=True))
    op.create_index("ix_messages_parent_id", "messages", ["parent_id"])
    op.execute(
        "UPDATE messages SET parent_id = COALESCE(reply_to, "
        + _BEFORE.format(role="user")
        + ") WHERE role = 'assistant'"
    )
    op.execute(
        "UPDATE messages SET parent_id = "
        + _BEFORE.format(role="assistant")
        + " WHERE role = 'user'"
    )


def downgrade() -> None:
    op.drop_index("ix_messages_parent_id", "messages")
    op.drop_column("messages", "parent_id")
