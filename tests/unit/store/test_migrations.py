"""Migration 0005 on a database with conversations stored before it: each becomes one branch."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from chatrelay.store.migrate import MIGRATIONS


def _migrate(connection: sa.Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def test_0005_makes_each_stored_conversation_one_branch(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as connection:
        _migrate(connection, "0004")
        connection.execute(
            sa.text(
                "INSERT INTO sessions (id, user_id, created_at, updated_at) "
                "VALUES ('s1', 'alice', '2026-12-01', '2026-12-01')"
            )
        )
        # A question, its answer regenerated once, a second question, and an answer
        # stored before answers recorded their question (no reply_to).
        for row_id, (message_id, role, reply_to) in enumerate(
            [
                ("q1", "user", None),
                ("a1", "assistant", "q1"),
                ("a1b", "assistant", "q1"),
                ("q2", "user", None),
                ("a2", "assistant", None),
            ],
            start=1,
        ):
            connection.execute(
                sa.text(
                    "INSERT INTO messages (row_id, id, session_id, role, content, status, "
                    "reply_to, created_at) VALUES (:row_id, :id, 's1', :role, '', 'completed', "
                    ":reply_to, '2026-12-01')"
                ),
                {"row_id": row_id, "id": message_id, "role": role, "reply_to": reply_to},
            )
        _migrate(connection, "head")
        rows = connection.execute(sa.text("SELECT id, parent_id FROM messages")).all()
        parents = {message_id: parent_id for message_id, parent_id in rows}
    engine.dispose()
    assert parents == {
        "q1": None,
        "a1": "q1",
        "a1b": "q1",  # alternatives: one parent
        "q2": "a1b",  # the conversation went on after the newest answer
        "a2": "q2",
    }
