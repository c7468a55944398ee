"""Alembic environment: migrations run on the connection handed over by ``store.migrate``."""

from __future__ import annotations

from alembic import context

from chatrelay.store.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through chatrelay.store.migrate.upgrade()")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
