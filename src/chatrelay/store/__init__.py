"""Durable conversations: SQLAlchemy 2 async on SQLite or PostgreSQL."""

from chatrelay.store.conversations import ConversationStore

__all__ = ["ConversationStore"]
